"""The baselines, each as plain as the operation allows, served the libraries' default way."""

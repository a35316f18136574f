// The tenant switcher applies as soon as a tenant is picked (without JavaScript, its button does).
document.addEventListener("change", (event) => {
  const picked = event.target.closest("select[data-submit-on-change]");
  if (picked) picked.form.requestSubmit();
});

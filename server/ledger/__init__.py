"""The rules of the books, applied inside the caller's transaction: how a payment's status may move
(payment_machine), what a refund's outcome does to its payment (refund_outcomes), and how credits
move between lots, holds and accounts (credit_moves)."""

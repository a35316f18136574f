-- Finance reads range over time: reconciliation (refunds by when they went through, disputes by when money
-- was withdrawn or reinstated) and exports (each table by its own time column).
CREATE INDEX refunds_settled_at ON refunds (updated_at) WHERE status = 'succeeded';
CREATE INDEX refunds_created ON refunds (created_at);
CREATE INDEX disputes_funds_withdrawn ON disputes (funds_withdrawn_at) WHERE funds_withdrawn_at IS NOT NULL;
CREATE INDEX disputes_funds_reinstated ON disputes (funds_reinstated_at) WHERE funds_reinstated_at IS NOT NULL;
CREATE INDEX payment_audit_created ON payment_audit (created_at);
CREATE INDEX credit_ledger_created ON credit_ledger (created_at);

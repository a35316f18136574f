-- An unpaid subscription may still come back (a late payment moves it to active), so it stays the one live
-- subscription of its (customer, product): only canceled, which is final, frees the place for a new start.
DROP INDEX subscriptions_one_live;
CREATE UNIQUE INDEX subscriptions_one_live ON subscriptions (tenant_id, customer_id, product_id)
    WHERE status <> 'canceled';

-- A customer's payments page by (created_at, id) as an index range, however deep the page: the old index
-- ended at created_at, so a page deep in a long history walked every newer payment first.
CREATE INDEX payments_customer_page ON payments (tenant_id, customer_id, created_at, id);
DROP INDEX payments_customer_created;

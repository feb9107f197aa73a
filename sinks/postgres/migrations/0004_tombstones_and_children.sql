-- Version 4: tombstones and children. Adds only; nothing is dropped or
-- rewritten.
--
-- parent_kind and parent_id name the document a record was read inside (a
-- customer's contacts, a product's stock levels, prices and variants, an
-- order's lines): a later version of the parent that no longer holds a
-- child, or the parent's deletion, marks the child deleted.
--
-- A deleted row stays as a tombstone: deleted is true, deleted_at says when
-- the deletion was learned (our clock) and deleted_via how (vendor, parent,
-- parent-deleted, absent, reconcile). deleted_hash is the content hash the
-- row takes when it is marked deleted without a new version, so that a
-- later live version with the same modified time restores it. Rows deleted
-- before this version were marked by their vendor: they get
-- deleted_via = 'vendor' and their synced_at as deleted_at.
--
-- <table>_parent_idx finds a parent's children (partial: only rows with a
-- parent); <table>_live_idx lists the live rows of a company and vendor
-- with their modified time (reconciliation) without reading the table.

ALTER TABLE tax_rates ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE tax_rates SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX tax_rates_parent_idx ON tax_rates (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX tax_rates_live_idx ON tax_rates (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE currencies ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE currencies SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX currencies_parent_idx ON currencies (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX currencies_live_idx ON currencies (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE warehouses ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE warehouses SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX warehouses_parent_idx ON warehouses (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX warehouses_live_idx ON warehouses (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE sales_people ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE sales_people SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX sales_people_parent_idx ON sales_people (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX sales_people_live_idx ON sales_people (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE suppliers ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE suppliers SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX suppliers_parent_idx ON suppliers (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX suppliers_live_idx ON suppliers (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE customers ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE customers SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX customers_parent_idx ON customers (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX customers_live_idx ON customers (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE contacts ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE contacts SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX contacts_parent_idx ON contacts (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX contacts_live_idx ON contacts (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE products ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE products SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX products_parent_idx ON products (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX products_live_idx ON products (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE stock_levels ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE stock_levels SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX stock_levels_parent_idx ON stock_levels (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX stock_levels_live_idx ON stock_levels (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE price_rules ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE price_rules SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX price_rules_parent_idx ON price_rules (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX price_rules_live_idx ON price_rules (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE sales_orders ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE sales_orders SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX sales_orders_parent_idx ON sales_orders (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX sales_orders_live_idx ON sales_orders (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE invoices ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE invoices SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX invoices_parent_idx ON invoices (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX invoices_live_idx ON invoices (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE credit_notes ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE credit_notes SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX credit_notes_parent_idx ON credit_notes (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX credit_notes_live_idx ON credit_notes (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

ALTER TABLE shipments ADD COLUMN parent_kind text, ADD COLUMN parent_id text, ADD COLUMN deleted_hash text,
    ADD COLUMN deleted_at timestamptz, ADD COLUMN deleted_via text;
UPDATE shipments SET deleted_via = 'vendor', deleted_at = synced_at WHERE deleted;
CREATE INDEX shipments_parent_idx ON shipments (company, vendor, parent_kind, parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX shipments_live_idx ON shipments (company, vendor, vendor_id) INCLUDE (modified_at) WHERE NOT deleted;

-- Version 3: a content hash per row and the set-aside table. Adds only;
-- nothing is dropped or rewritten.
--
-- content_hash is model.HashContent of the kind, the deleted flag, the
-- canonical payload and the vendor document. A record is written when its
-- modified time is the stored one or newer and its hash differs; rows stored
-- before this version hold NULL, which differs from every hash, so their next
-- delivery rewrites them once and stores the hash.
--
-- set_aside keeps the documents a connector could not map, with the reason
-- and the raw document, until a Write stores a record of the same key.

ALTER TABLE tax_rates ADD COLUMN content_hash TEXT;
ALTER TABLE currencies ADD COLUMN content_hash TEXT;
ALTER TABLE warehouses ADD COLUMN content_hash TEXT;
ALTER TABLE sales_people ADD COLUMN content_hash TEXT;
ALTER TABLE suppliers ADD COLUMN content_hash TEXT;
ALTER TABLE customers ADD COLUMN content_hash TEXT;
ALTER TABLE contacts ADD COLUMN content_hash TEXT;
ALTER TABLE products ADD COLUMN content_hash TEXT;
ALTER TABLE stock_levels ADD COLUMN content_hash TEXT;
ALTER TABLE price_rules ADD COLUMN content_hash TEXT;
ALTER TABLE sales_orders ADD COLUMN content_hash TEXT;
ALTER TABLE invoices ADD COLUMN content_hash TEXT;
ALTER TABLE credit_notes ADD COLUMN content_hash TEXT;
ALTER TABLE shipments ADD COLUMN content_hash TEXT;

CREATE TABLE set_aside (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    kind               TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT,
    reason             TEXT NOT NULL,
    raw                TEXT,
    first_seen         TEXT NOT NULL,
    last_seen          TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (company, vendor, kind, vendor_id)
) STRICT;

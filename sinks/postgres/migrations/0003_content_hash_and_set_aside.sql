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

ALTER TABLE tax_rates ADD COLUMN content_hash text;
ALTER TABLE currencies ADD COLUMN content_hash text;
ALTER TABLE warehouses ADD COLUMN content_hash text;
ALTER TABLE sales_people ADD COLUMN content_hash text;
ALTER TABLE suppliers ADD COLUMN content_hash text;
ALTER TABLE customers ADD COLUMN content_hash text;
ALTER TABLE contacts ADD COLUMN content_hash text;
ALTER TABLE products ADD COLUMN content_hash text;
ALTER TABLE stock_levels ADD COLUMN content_hash text;
ALTER TABLE price_rules ADD COLUMN content_hash text;
ALTER TABLE sales_orders ADD COLUMN content_hash text;
ALTER TABLE invoices ADD COLUMN content_hash text;
ALTER TABLE credit_notes ADD COLUMN content_hash text;
ALTER TABLE shipments ADD COLUMN content_hash text;

CREATE TABLE set_aside (
    company            text NOT NULL,
    vendor             text NOT NULL,
    kind               text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz,
    reason             text NOT NULL,
    raw                jsonb,
    first_seen         timestamptz NOT NULL DEFAULT now(),
    last_seen          timestamptz NOT NULL DEFAULT now(),
    attempts           integer NOT NULL DEFAULT 1,
    PRIMARY KEY (company, vendor, kind, vendor_id)
);

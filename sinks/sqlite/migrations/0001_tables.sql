-- Version 1: one table per canonical kind. The key is (company, vendor,
-- vendor_id): companies never collide. data is the canonical payload as JSON
-- text, raw the vendor's document. Times are UTC text of fixed width
-- (2006-01-02T15:04:05.000000Z) so that they compare as text; money is
-- exact decimal text; booleans are 0/1.

CREATE TABLE tax_rates (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    code               TEXT,
    name               TEXT,
    rate               REAL,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE currencies (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    code               TEXT,
    name               TEXT,
    exchange_rate      REAL,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE warehouses (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    code               TEXT,
    name               TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE sales_people (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    code               TEXT,
    name               TEXT,
    email              TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE suppliers (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    code               TEXT,
    name               TEXT,
    email              TEXT,
    phone              TEXT,
    currency           TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE customers (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    code               TEXT,
    name               TEXT,
    email              TEXT,
    phone              TEXT,
    currency           TEXT,
    price_tier         TEXT,
    sales_person       TEXT,
    status             TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE contacts (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    customer_vendor_id TEXT,
    first_name         TEXT,
    last_name          TEXT,
    email              TEXT,
    phone              TEXT,
    role               TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE products (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    sku                TEXT,
    name               TEXT,
    category           TEXT,
    unit_of_measure    TEXT,
    sell_price         TEXT,
    cost_price         TEXT,
    currency           TEXT,
    parent_vendor_id   TEXT,
    is_sold            INTEGER,
    is_purchased       INTEGER,
    tracked            INTEGER,
    obsolete           INTEGER,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE stock_levels (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    product_vendor_id  TEXT,
    sku                TEXT,
    warehouse          TEXT,
    warehouse_name     TEXT,
    on_hand            REAL,
    allocated          REAL,
    available          REAL,
    on_order           REAL,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE price_rules (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    product_vendor_id  TEXT,
    sku                TEXT,
    customer_vendor_id TEXT,
    customer_code      TEXT,
    price_tier         TEXT,
    price_list         TEXT,
    price              TEXT,
    currency           TEXT,
    min_quantity       REAL,
    valid_from         TEXT,
    valid_to           TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE sales_orders (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    number             TEXT,
    customer_vendor_id TEXT,
    customer_code      TEXT,
    status             TEXT,
    order_date         TEXT,
    required_date      TEXT,
    warehouse          TEXT,
    currency           TEXT,
    sub_total          TEXT,
    tax_total          TEXT,
    total              TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE invoices (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    number             TEXT,
    type               TEXT,
    customer_vendor_id TEXT,
    customer_code      TEXT,
    sales_order_number TEXT,
    status             TEXT,
    issue_date         TEXT,
    due_date           TEXT,
    currency           TEXT,
    sub_total          TEXT,
    tax_total          TEXT,
    total              TEXT,
    amount_due         TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE credit_notes (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    number             TEXT,
    type               TEXT,
    customer_vendor_id TEXT,
    customer_code      TEXT,
    invoice_number     TEXT,
    status             TEXT,
    issue_date         TEXT,
    currency           TEXT,
    sub_total          TEXT,
    tax_total          TEXT,
    total              TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;

CREATE TABLE shipments (
    company            TEXT NOT NULL,
    vendor             TEXT NOT NULL,
    vendor_id          TEXT NOT NULL,
    modified_at        TEXT NOT NULL,
    deleted            INTEGER NOT NULL DEFAULT 0,
    data               TEXT NOT NULL,
    raw                TEXT,
    synced_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    number             TEXT,
    sales_order_number TEXT,
    status             TEXT,
    shipped_date       TEXT,
    carrier            TEXT,
    tracking_number    TEXT,
    warehouse          TEXT,
    PRIMARY KEY (company, vendor, vendor_id)
) STRICT;


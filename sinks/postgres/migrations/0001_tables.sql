-- Version 1: one table per canonical kind. The key is (company, vendor,
-- vendor_id): companies never collide. data is the canonical payload, raw
-- the vendor's document; the typed columns are what a CRM queries.

CREATE TABLE tax_rates (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    code               text,
    name               text,
    rate               double precision,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE currencies (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    code               text,
    name               text,
    exchange_rate      double precision,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE warehouses (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    code               text,
    name               text,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE sales_people (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    code               text,
    name               text,
    email              text,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE suppliers (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    code               text,
    name               text,
    email              text,
    phone              text,
    currency           text,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE customers (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    code               text,
    name               text,
    email              text,
    phone              text,
    currency           text,
    price_tier         text,
    sales_person       text,
    status             text,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE contacts (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    customer_vendor_id text,
    first_name         text,
    last_name          text,
    email              text,
    phone              text,
    role               text,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE products (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    sku                text,
    name               text,
    category           text,
    unit_of_measure    text,
    sell_price         numeric,
    cost_price         numeric,
    currency           text,
    parent_vendor_id   text,
    is_sold            boolean,
    is_purchased       boolean,
    tracked            boolean,
    obsolete           boolean,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE stock_levels (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    product_vendor_id  text,
    sku                text,
    warehouse          text,
    warehouse_name     text,
    on_hand            double precision,
    allocated          double precision,
    available          double precision,
    on_order           double precision,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE price_rules (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    product_vendor_id  text,
    sku                text,
    customer_vendor_id text,
    customer_code      text,
    price_tier         text,
    price_list         text,
    price              numeric,
    currency           text,
    min_quantity       double precision,
    valid_from         timestamptz,
    valid_to           timestamptz,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE sales_orders (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    number             text,
    customer_vendor_id text,
    customer_code      text,
    status             text,
    order_date         timestamptz,
    required_date      timestamptz,
    warehouse          text,
    currency           text,
    sub_total          numeric,
    tax_total          numeric,
    total              numeric,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE invoices (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    number             text,
    type               text,
    customer_vendor_id text,
    customer_code      text,
    sales_order_number text,
    status             text,
    issue_date         timestamptz,
    due_date           timestamptz,
    currency           text,
    sub_total          numeric,
    tax_total          numeric,
    total              numeric,
    amount_due         numeric,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE credit_notes (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    number             text,
    type               text,
    customer_vendor_id text,
    customer_code      text,
    invoice_number     text,
    status             text,
    issue_date         timestamptz,
    currency           text,
    sub_total          numeric,
    tax_total          numeric,
    total              numeric,
    PRIMARY KEY (company, vendor, vendor_id)
);

CREATE TABLE shipments (
    company            text NOT NULL,
    vendor             text NOT NULL,
    vendor_id          text NOT NULL,
    modified_at        timestamptz NOT NULL,
    deleted            boolean NOT NULL DEFAULT false,
    data               jsonb NOT NULL,
    raw                jsonb,
    synced_at          timestamptz NOT NULL DEFAULT now(),
    number             text,
    sales_order_number text,
    status             text,
    shipped_date       timestamptz,
    carrier            text,
    tracking_number    text,
    warehouse          text,
    PRIMARY KEY (company, vendor, vendor_id)
);


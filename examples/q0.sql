-- Nexmark q0: pass-through. Measures the cost of reading and writing bids.
CREATE TABLE bid (
    auction  BIGINT,
    bidder   BIGINT,
    price    BIGINT,
    channel  VARCHAR,
    url      VARCHAR,
    dateTime TIMESTAMP(3),
    extra    VARCHAR,
    WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH (
    'connector' = 'nexmark',
    'nexmark.table' = 'bid',
    'events' = '10000000'
);

CREATE TABLE discard (
    auction  BIGINT,
    bidder   BIGINT,
    price    BIGINT,
    dateTime TIMESTAMP(3),
    extra    VARCHAR
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT auction, bidder, price, dateTime, extra FROM bid;

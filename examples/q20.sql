-- Nexmark q20: expand bid with auction. Every bid of an auction in category 10, with the
-- auction's columns: a regular join of bids and auctions (both in keyed state), filtered. As the
-- official query (whose INSERT names another table than its sink: here both are `discard`).
CREATE TABLE auction (
    id          BIGINT,
    itemName    VARCHAR,
    description VARCHAR,
    initialBid  BIGINT,
    reserve     BIGINT,
    dateTime    TIMESTAMP(3),
    expires     TIMESTAMP(3),
    seller      BIGINT,
    category    BIGINT,
    extra       VARCHAR
) WITH (
    'connector' = 'nexmark',
    'nexmark.table' = 'auction',
    'events' = '10000000'
);

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
    auction          BIGINT,
    bidder           BIGINT,
    price            BIGINT,
    channel          VARCHAR,
    url              VARCHAR,
    bid_dateTime     TIMESTAMP(3),
    bid_extra        VARCHAR,

    itemName         VARCHAR,
    description      VARCHAR,
    initialBid       BIGINT,
    reserve          BIGINT,
    auction_dateTime TIMESTAMP(3),
    expires          TIMESTAMP(3),
    seller           BIGINT,
    category         BIGINT,
    auction_extra    VARCHAR
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT
    auction, bidder, price, channel, url, B.dateTime, B.extra,
    itemName, description, initialBid, reserve, A.dateTime, expires, seller, category, A.extra
FROM
    bid AS B INNER JOIN auction AS A on B.auction = A.id
WHERE A.category = 10;

-- Nexmark q9: winning bids. Each auction with its highest bid made while it was open (the
-- earliest of equal ones): a regular join of auctions and bids, then ROW_NUMBER() per auction
-- kept to number 1 (a Top-1 over the join's output). As the official query, with `dateTime`
-- for `customTime` (as its earlier versions have it).
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
    id           BIGINT,
    itemName     VARCHAR,
    description  VARCHAR,
    initialBid   BIGINT,
    reserve      BIGINT,
    dateTime     TIMESTAMP(3),
    expires      TIMESTAMP(3),
    seller       BIGINT,
    category     BIGINT,
    extra        VARCHAR,
    auction      BIGINT,
    bidder       BIGINT,
    price        BIGINT,
    bid_dateTime TIMESTAMP(3),
    bid_extra    VARCHAR
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT
    id, itemName, description, initialBid, reserve, dateTime, expires, seller, category, extra,
    auction, bidder, price, bid_dateTime, bid_extra
FROM (
   SELECT A.*, B.auction, B.bidder, B.price, B.dateTime AS bid_dateTime, B.extra AS bid_extra,
     ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC) AS rownum
   FROM auction A, bid B
   WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
)
WHERE rownum <= 1;

-- The first half of Nexmark q5: bids per auction in 10-second windows sliding every 2 seconds
-- (q5 then keeps the auctions whose count is the window's maximum).
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
    auction   BIGINT,
    starttime TIMESTAMP(3),
    endtime   TIMESTAMP(3),
    num       BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT
    auction,
    HOP_START(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS starttime,
    HOP_END(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND) AS endtime,
    COUNT(*) AS num
FROM bid
GROUP BY auction, HOP(dateTime, INTERVAL '2' SECOND, INTERVAL '10' SECOND);

-- The first half of Nexmark q7: the highest bid of every 10-second window (q7 then joins it
-- back to the bids that carry it).
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
    maxprice BIGINT,
    dateTime TIMESTAMP(3)
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT MAX(price) AS maxprice, TUMBLE_END(dateTime, INTERVAL '10' SECOND) AS dateTime
FROM bid
GROUP BY TUMBLE(dateTime, INTERVAL '10' SECOND);

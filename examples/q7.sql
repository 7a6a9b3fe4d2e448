-- Nexmark q7: highest bid. Every bid that is the highest of a 10-second tumbling window: the
-- window's maximum (TUMBLE as a window table function) joined back to the bids by price, kept
-- when the bid falls in the 10 seconds before the window's end. A regular join, as in Flink:
-- both sides stay in keyed state. As the official query.
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
SELECT B.auction, B.bidder, B.price, B.dateTime, B.extra
from bid B
JOIN (
  SELECT MAX(price) AS maxprice, window_end as dateTime
  FROM TABLE(
          TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))
  GROUP BY window_start, window_end
) B1
ON B.price = B1.maxprice
WHERE B.dateTime BETWEEN B1.dateTime  - INTERVAL '10' SECOND AND B1.dateTime;

-- Nexmark q17: auction statistics report. Per auction and day, how many bids in three price
-- ranges and their least, greatest, average and total price: a GROUP BY without a window whose
-- results every bid updates. As the official query, but the average is a DOUBLE (Flink's AVG
-- of a BIGINT is a BIGINT).
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
    auction    BIGINT,
    `day`      VARCHAR,
    total_bids BIGINT,
    rank1_bids BIGINT,
    rank2_bids BIGINT,
    rank3_bids BIGINT,
    min_price  BIGINT,
    max_price  BIGINT,
    avg_price  DOUBLE,
    sum_price  BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT
     auction,
     DATE_FORMAT(dateTime, 'yyyy-MM-dd') as `day`,
     count(*) AS total_bids,
     count(*) filter (where price < 10000) AS rank1_bids,
     count(*) filter (where price >= 10000 and price < 1000000) AS rank2_bids,
     count(*) filter (where price >= 1000000) AS rank3_bids,
     min(price) AS min_price,
     max(price) AS max_price,
     avg(price) AS avg_price,
     sum(price) AS sum_price
FROM bid
GROUP BY auction, DATE_FORMAT(dateTime, 'yyyy-MM-dd');

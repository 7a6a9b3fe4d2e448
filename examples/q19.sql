-- Nexmark q19: auction top-10 price. The ten highest bids of each auction with their rank:
-- ROW_NUMBER() per auction, highest price first, keeping numbers 1 to 10 (a Top-N; a new bid
-- among them moves the ones after it one rank down). As the official query.
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
    channel  VARCHAR,
    url      VARCHAR,
    dateTime TIMESTAMP(3),
    extra    VARCHAR,
    rank_number BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT * FROM
(SELECT *, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rank_number FROM bid)
WHERE rank_number <= 10;

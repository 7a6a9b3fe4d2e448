-- Nexmark q4: average price per category. The closing price of every auction (the highest bid
-- between its start and its end: a regular join of auctions and bids, then a GROUP BY per
-- auction), averaged per category by a second GROUP BY over the first one's changelog: each
-- higher bid takes the auction's old closing price back out of its category's average.
-- As the official query, but the average is a DOUBLE (Flink's AVG of a BIGINT is a BIGINT).
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
    id    BIGINT,
    final DOUBLE
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT
    Q.category,
    AVG(Q.final)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category;

-- Nexmark q3: local item suggestion. Who is selling in category 10 in Oregon, Idaho or
-- California: a regular join of every auction with the person selling it, updated as either
-- arrives (Flink's INNER JOIN; both sides stay in keyed state).
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

CREATE TABLE person (
    id           BIGINT,
    name         VARCHAR,
    emailAddress VARCHAR,
    creditCard   VARCHAR,
    city         VARCHAR,
    state        VARCHAR,
    dateTime     TIMESTAMP(3),
    extra        VARCHAR
) WITH (
    'connector' = 'nexmark',
    'nexmark.table' = 'person',
    'events' = '10000000'
);

CREATE TABLE discard (
    name  VARCHAR,
    city  VARCHAR,
    state VARCHAR,
    id    BIGINT
) WITH ('connector' = 'blackhole');

INSERT INTO discard
SELECT P.name, P.city, P.state, A.id
FROM auction AS A INNER JOIN person AS P ON A.seller = P.id
WHERE A.category = 10 AND (P.state = 'OR' OR P.state = 'ID' OR P.state = 'CA');

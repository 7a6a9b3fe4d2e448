-- Live-stream gift statistics per room, after the job shown in Alibaba's StreamCompute talk:
-- gifts are counted per platform, gift type and room in 1-minute tumbling windows and in
-- 5-minute windows sliding every minute. The talk enriched gifts from dimension tables
-- (FOR SYSTEM_TIME AS OF PROCTIME() lookups); here the platform and type come with the
-- generated gift instead, and event time is derived from a sequence: one gift every 20 ms.
CREATE TABLE gift (
    seq        BIGINT,
    pf         INT,
    type_id    INT,
    room_id    BIGINT,
    user_id    BIGINT,
    gift_cost  BIGINT,
    gift_count INT,
    dateline AS TO_TIMESTAMP_MILLIS(1700000000000 + seq * 20),
    WATERMARK FOR dateline AS dateline - INTERVAL '5' SECOND
) WITH (
    'connector' = 'datagen',
    'number-of-rows' = '60000',
    'rows-per-second' = '1000000',
    'fields.seq.kind' = 'sequence',
    'fields.seq.start' = '0',
    'fields.seq.end' = '59999',
    'fields.pf.min' = '1',
    'fields.pf.max' = '2',
    'fields.type_id.min' = '1',
    'fields.type_id.max' = '4',
    'fields.room_id.min' = '1',
    'fields.room_id.max' = '10',
    'fields.user_id.min' = '1',
    'fields.user_id.max' = '100000',
    'fields.gift_cost.min' = '1',
    'fields.gift_cost.max' = '500',
    'fields.gift_count.min' = '1',
    'fields.gift_count.max' = '10'
);

CREATE VIEW gifts AS
SELECT pf, type_id, room_id, gift_cost * gift_count AS spent, gift_count, dateline
FROM gift
WHERE gift_count > 0;

CREATE TABLE room_minute (
    pf         INT,
    type_id    INT,
    room_id    BIGINT,
    start_time TIMESTAMP(3),
    end_time   TIMESTAMP(3),
    gifts      BIGINT,
    spent      BIGINT
) WITH ('connector' = 'print', 'print-identifier' = '1m');

CREATE TABLE room_five_minutes (
    pf         INT,
    type_id    INT,
    room_id    BIGINT,
    start_time TIMESTAMP(3),
    end_time   TIMESTAMP(3),
    gifts      BIGINT,
    spent      BIGINT
) WITH ('connector' = 'print', 'print-identifier' = '5m');

INSERT INTO room_minute
SELECT pf, type_id, room_id,
       TUMBLE_START(dateline, INTERVAL '1' MINUTE) AS start_time,
       TUMBLE_END(dateline, INTERVAL '1' MINUTE) AS end_time,
       SUM(gift_count) AS gifts,
       SUM(spent) AS spent
FROM gifts
GROUP BY TUMBLE(dateline, INTERVAL '1' MINUTE), pf, type_id, room_id;

INSERT INTO room_five_minutes
SELECT pf, type_id, room_id,
       HOP_START(dateline, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE) AS start_time,
       HOP_END(dateline, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE) AS end_time,
       SUM(gift_count) AS gifts,
       SUM(spent) AS spent
FROM gifts
GROUP BY HOP(dateline, INTERVAL '1' MINUTE, INTERVAL '5' MINUTE), pf, type_id, room_id;

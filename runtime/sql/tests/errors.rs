//! Bad jobs are refused with a message in Flink's terms and the position it refers to.

const BID: &str = "CREATE TABLE bid (
  auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR,
  dateTime TIMESTAMP(3), extra VARCHAR,
  WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND
) WITH ('connector' = 'nexmark', 'nexmark.table' = 'bid', 'events' = '1000');
CREATE TABLE out1 (a BIGINT, b BIGINT) WITH ('connector' = 'blackhole');
";

/// Plans `BID` followed by `job`; returns the error text and its (line, column).
fn error(job: &str) -> (String, Option<(u64, u64)>) {
    let sql = format!("{BID}{job}");
    let err = spate_sql::plan(&sql, 2)
        .err()
        .unwrap_or_else(|| panic!("accepted: {job}"));
    (err.to_string(), err.position.map(|p| (p.line, p.column)))
}

/// Line numbers in `job` as they are in the whole script.
fn line(n: u64) -> u64 {
    BID.lines().count() as u64 + n
}

#[test]
fn syntax_errors_point_at_the_token() {
    let (text, at) = error("INSERT INTO out1\nSELECT auction, price FROM bid WHERE;");
    assert_eq!(at, Some((line(2), 37)), "{text}");
    assert!(text.contains("found: ;"), "{text}");
    assert!(
        text.contains(
            "\n  SELECT auction, price FROM bid WHERE;\n                                      ^"
        ),
        "{text}"
    );
}

#[test]
fn unknown_tables_and_columns_are_named() {
    let (text, at) = error("INSERT INTO out1 SELECT auction, price FROM bids;");
    assert!(
        text.contains("table 'bids' is not declared") && text.contains("bid"),
        "{text}"
    );
    assert!(at.is_some());
    let (text, at) = error("INSERT INTO out1\nSELECT auction, prize FROM bid;");
    assert!(text.contains("prize"), "{text}");
    assert_eq!(at.map(|a| a.0), Some(line(2)), "{text}");
    let (text, _) = error("INSERT INTO nowhere SELECT auction, price FROM bid;");
    assert!(
        text.contains("INSERT INTO nowhere: no such table"),
        "{text}"
    );
}

#[test]
fn connector_mistakes_name_the_table_and_option() {
    let (text, at) = error(
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'kafkaa');\nINSERT INTO t SELECT auction FROM bid;",
    );
    assert!(
        text.contains("table 't': unknown connector 'kafkaa'") && text.contains("nexmark"),
        "{text}"
    );
    assert_eq!(at, Some((line(1), 14)), "{text}");
    let (text, _) = error(
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'filesystem', 'format' = 'csv');\nINSERT INTO t SELECT auction FROM bid;",
    );
    assert!(text.contains("missing required option 'path'"), "{text}");
    let (text, _) = error(
        "CREATE TABLE t (a BIGINT) WITH ('connector' = 'blackhole', 'colour' = 'red');\nINSERT INTO t SELECT auction FROM bid;",
    );
    assert!(text.contains("unknown option(s) colour"), "{text}");
    let (text, _) = error(
        "CREATE TABLE t (a BIGINT) WITH ('format' = 'csv');\nINSERT INTO t SELECT auction FROM bid;",
    );
    assert!(text.contains("has no 'connector' option"), "{text}");
    let sql = BID.replace("'events' = '1000'", "'events' = 'many'");
    let err = spate_sql::plan(
        &format!("{sql}INSERT INTO out1 SELECT auction, price FROM bid;"),
        1,
    )
    .err()
    .unwrap();
    assert!(
        err.to_string().contains("'events'") && err.to_string().contains("many"),
        "{err}"
    );
}

#[test]
fn updates_into_a_sink_of_inserts_name_the_sink_and_the_aggregate() {
    let (text, at) = error(
        "CREATE TABLE files (a BIGINT, b BIGINT) WITH ('connector' = 'filesystem', 'path' = '/tmp/x', 'format' = 'csv');\n\
         INSERT INTO files SELECT auction, COUNT(*) FROM bid GROUP BY auction;",
    );
    assert!(
        text.contains(
            "INSERT INTO files: the table's connector 'filesystem' takes inserts only, but \
             'group aggregate by bid.auction' in the query updates its results (a retract changelog)"
        ),
        "{text}"
    );
    assert_eq!(at, Some((line(2), 1)), "{text}");
    // The same query into a sink that takes changes plans.
    let sql = format!("{BID}INSERT INTO out1 SELECT auction, COUNT(*) FROM bid GROUP BY auction;");
    let graph = spate_sql::plan(&sql, 2).unwrap();
    let job = spate_graph::JobGraph::build(graph).unwrap();
    let sink = job.stream.nodes.iter().find(|n| n.name == "sink: out1");
    assert_eq!(
        sink.map(|n| &n.changelog),
        Some(&spate_api::ChangelogMode::Retract)
    );
}

/// A sink with a PRIMARY KEY takes upserts: the query's retractions become upserts, hashed by
/// the key to the sink.
#[test]
fn a_sink_with_a_primary_key_is_fed_upserts_hashed_by_its_key() {
    let sql = format!(
        "{BID}CREATE TABLE keyed (a BIGINT, n BIGINT, PRIMARY KEY (a) NOT ENFORCED) \
         WITH ('connector' = 'blackhole');\n\
         INSERT INTO keyed SELECT auction, COUNT(*) FROM bid GROUP BY auction;"
    );
    let job = spate_graph::JobGraph::build(spate_sql::plan(&sql, 2).unwrap()).unwrap();
    let nodes = &job.stream.nodes;
    let upserts = spate_api::ChangelogMode::Upsert {
        key: vec!["a".into()],
    };
    let sink = nodes.iter().find(|n| n.name == "sink: keyed").unwrap();
    assert_eq!(sink.changelog, upserts);
    let changes = nodes.iter().find(|n| n.name == "upsert changes").unwrap();
    assert_eq!(changes.changelog, upserts);
    let into_sink = job
        .stream
        .edges
        .iter()
        .find(|e| nodes[e.to].name == "sink: keyed")
        .unwrap();
    assert_eq!(nodes[into_sink.from].name, "upsert changes");
    assert_eq!(
        into_sink.partitioning,
        spate_graph::Partitioning::Hash(vec!["a".into()])
    );
}

/// Aggregates over a changelog, SELECT DISTINCT, a join written as a product with its
/// condition in WHERE, outer joins and Top-N plan (their results are checked on real processes in the CLI's tests).
#[test]
fn aggregates_over_changes_distinct_rows_and_joins_in_where_plan() {
    for query in [
        "SELECT n, COUNT(*) FROM (SELECT auction, COUNT(*) AS n FROM bid GROUP BY auction) GROUP BY n",
        "SELECT DISTINCT auction, price FROM bid",
        "SELECT a.auction, MAX(b.price) FROM bid a, bid b WHERE a.auction = b.auction AND a.price < b.price GROUP BY a.auction",
        "SELECT auction, price FROM (SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn FROM bid) WHERE rn <= 3",
        "SELECT auction, rn FROM (SELECT *, ROW_NUMBER() OVER (ORDER BY dateTime) AS rn FROM bid) WHERE 2 > rn",
        "SELECT a.auction, b.price FROM bid a LEFT JOIN bid b ON a.auction = b.auction",
        "SELECT a.auction, b.price FROM bid a FULL OUTER JOIN bid b ON a.auction = b.auction + 1",
    ] {
        let sql = format!("{BID}INSERT INTO out1 {query};");
        let graph = spate_sql::plan(&sql, 2).unwrap_or_else(|e| panic!("{query}: {e}"));
        let job = spate_graph::JobGraph::build(graph).unwrap();
        let sink = job.stream.nodes.iter().find(|n| n.name == "sink: out1");
        assert_eq!(
            sink.map(|n| &n.changelog),
            Some(&spate_api::ChangelogMode::Retract),
            "{query}"
        );
    }
}

#[test]
fn unsupported_constructs_say_so() {
    for (job, expected) in [
        (
            "INSERT INTO out1 SELECT n, COUNT(*) FROM (SELECT auction, COUNT(*) AS n, MAX(dateTime) AS ts FROM bid GROUP BY auction) GROUP BY n, TUMBLE(ts, INTERVAL '1' SECOND);",
            "unsupported: a group window over a changelog (retract, from 'group aggregate by bid.auction')",
        ),
        (
            "INSERT INTO out1 SELECT DISTINCT ON (auction) auction, price FROM bid;",
            "unsupported: DISTINCT ON",
        ),
        (
            "INSERT INTO out1 SELECT auction, SUM(price) OVER (PARTITION BY auction ORDER BY dateTime) FROM bid;",
            "unsupported: OVER windows",
        ),
        (
            "INSERT INTO out1 SELECT auction, price FROM (SELECT auction, price, ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price) AS rn FROM bid) WHERE rn > 3;",
            "unsupported: OVER windows (of them, ROW_NUMBER() runs under a WHERE",
        ),
        (
            "INSERT INTO out1 SELECT n, m FROM (SELECT n, m, ROW_NUMBER() OVER (PARTITION BY n ORDER BY m) AS rn FROM (SELECT auction AS n, COUNT(*) AS m FROM bid GROUP BY auction)) WHERE rn = 1;",
            "unsupported: a Top-N over a changelog",
        ),
        (
            "INSERT INTO out1 SELECT auction, CAST(DATE_FORMAT(dateTime, 'yyyy-ww') AS BIGINT) FROM bid;",
            "unsupported: DATE_FORMAT pattern 'yyyy-ww': the letter 'w' (2 times) is not supported",
        ),
        (
            "INSERT INTO out1 SELECT auction, COUNT(*) FROM bid GROUP BY DATE_FORMAT(dateTime, extra), auction;",
            "DATE_FORMAT with the pattern extra (it must be a string literal)",
        ),
        (
            "INSERT INTO out1 SELECT a.auction, b.price FROM bid a LEFT JOIN bid b ON a.auction = b.auction AND a.price > b.price;",
            "unsupported: LEFT JOIN with ON conditions other than equalities between its two sides",
        ),
        (
            "INSERT INTO out1 SELECT a.auction, b.price FROM bid a JOIN bid b ON a.price > b.price;",
            "unsupported: a join without an equality between columns of its two sides",
        ),
        (
            "INSERT INTO out1 SELECT auction, price FROM bid ORDER BY price;",
            "unsupported: ORDER BY",
        ),
        (
            "INSERT INTO out1 SELECT auction, price FROM bid WHERE auction IN (SELECT auction FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)));",
            "unsupported: TABLE(TUMBLE(...)) here; a window table function is supported as the only FROM item",
        ),
        ("SELECT auction FROM bid;", "unsupported: a bare SELECT"),
        (
            "CREATE TABLE keyed (a BIGINT, b BIGINT, PRIMARY KEY (a)) WITH ('connector' = 'blackhole');",
            "table 'keyed': write PRIMARY KEY (...) NOT ENFORCED",
        ),
        (
            "CREATE TABLE keyed (a BIGINT PRIMARY KEY NOT ENFORCED, b BIGINT, PRIMARY KEY (b) NOT ENFORCED) WITH ('connector' = 'blackhole');",
            "table 'keyed' declares more than one PRIMARY KEY",
        ),
        (
            "CREATE TABLE keyed (a BIGINT, b BIGINT, PRIMARY KEY (c) NOT ENFORCED) WITH ('connector' = 'blackhole');",
            "PRIMARY KEY column 'c' is not a declared column",
        ),
        (
            "CREATE TABLE keyed (a BIGINT, b BIGINT, UNIQUE (a)) WITH ('connector' = 'blackhole');",
            "unsupported: table 'keyed': constraint UNIQUE (a) (only PRIMARY KEY is)",
        ),
        (
            "CREATE TABLE keyed (a BIGINT, b BIGINT, PRIMARY KEY (a) NOT ENFORCED) WITH ('connector' = 'filesystem', 'path' = '/nonexistent/out', 'format' = 'csv');\nINSERT INTO keyed SELECT auction, price FROM bid;",
            "connector 'filesystem' does not take a PRIMARY KEY",
        ),
        (
            "CREATE TABLE up (a BIGINT, b BIGINT) WITH ('connector' = 'upsert-kafka', 'topic' = 't', 'properties.bootstrap.servers' = '127.0.0.1:1', 'key.format' = 'json', 'value.format' = 'json');\nINSERT INTO up SELECT auction, price FROM bid;",
            "an upsert-kafka table needs a PRIMARY KEY (...) NOT ENFORCED",
        ),
        ("DROP TABLE bid;", "unsupported: statement 'DROP TABLE"),
        (
            "INSERT INTO out1 SELECT auction, SUM(DISTINCT bidder) FROM bid GROUP BY auction, TUMBLE(dateTime, INTERVAL '1' SECOND);",
            "DISTINCT is supported for COUNT, MIN and MAX",
        ),
        (
            "INSERT INTO out1 SELECT auction, COUNT(*) FROM bid GROUP BY auction, TUMBLE(price, INTERVAL '1' SECOND);",
            "first argument must be the event-time attribute",
        ),
        (
            "INSERT INTO out1 SELECT auction, TUMBLE_ROWTIME(dateTime, INTERVAL '1' SECOND) FROM bid;",
            "TUMBLE_ROWTIME",
        ),
    ] {
        let (text, at) = error(job);
        assert!(text.contains(expected), "{job}\n  -> {text}");
        assert!(at.is_some(), "{job} -> no position");
    }
}

#[test]
fn ddl_mistakes_point_into_the_table() {
    let (text, at) =
        error("CREATE TABLE t (a BIGINT, b GEOMETRY) WITH ('connector' = 'blackhole');");
    assert!(
        text.contains("column 'b': type GEOMETRY is not supported"),
        "{text}"
    );
    assert_eq!(at, Some((line(1), 27)));
    let (text, at) = error(
        "CREATE TABLE t (a BIGINT, ts TIMESTAMP(3),\n WATERMARK FOR ts AS ts * 2) WITH ('connector' = 'blackhole');",
    );
    assert!(text.contains("watermark expression"), "{text}");
    assert_eq!(at, Some((line(2), 22)));
    let (text, _) =
        error("CREATE TABLE t (a BIGINT, WATERMARK FOR a AS a) WITH ('connector' = 'blackhole');");
    assert!(
        text.contains("time attribute must be TIMESTAMP(3)"),
        "{text}"
    );
    let (text, _) = error("CREATE TABLE bid (a BIGINT) WITH ('connector' = 'blackhole');");
    assert!(text.contains("already exists"), "{text}");
    let (text, _) = error("CREATE VIEW v AS SELECT auction FROM bid;");
    assert!(text.contains("no INSERT INTO"), "{text}");
}

#[test]
fn the_sink_shape_is_checked() {
    let (text, _) = error("INSERT INTO out1 SELECT auction FROM bid;");
    assert!(
        text.contains("produces 1 column(s) but the table has 2 (a, b)"),
        "{text}"
    );
    // A string into a BIGINT column would be NULL wherever it does not parse: Flink refuses it.
    let (text, at) = error("INSERT INTO out1\nSELECT auction, channel FROM bid;");
    assert_eq!(at.map(|(line, _)| line), Some(line(1)), "{text}");
    assert!(
        text.contains(
            "column 2 ('b') is Utf8 in the query, which Flink does not write into a Int64 column"
        ),
        "{text}"
    );
    // Narrowing too; widening is fine.
    let (text, _) = error(
        "CREATE TABLE out2 (a INT) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out2 SELECT auction FROM bid;",
    );
    assert!(text.contains("is Int64 in the query"), "{text}");
    let sql = format!(
        "{BID}CREATE TABLE out2 (a DOUBLE, b TIMESTAMP(6)) WITH ('connector' = 'blackhole');
         INSERT INTO out2 SELECT CAST(auction AS INT), dateTime FROM bid;"
    );
    spate_sql::plan(&sql, 2).unwrap();
}

#[test]
fn an_expression_thousands_of_terms_deep_is_refused_with_its_position() {
    // Before the limit this overflowed the stack and aborted the process.
    let terms = vec!["price"; 3000].join(" + ");
    let (text, at) = error(&format!(
        "INSERT INTO out1 SELECT auction, {terms} FROM bid;"
    ));
    assert!(text.contains("nests more than 1000 levels deep"), "{text}");
    assert_eq!(at, Some((line(1), 34)), "{text}");
    // Below the limit it plans, also on a thread with a small stack.
    let sql = format!(
        "{BID}INSERT INTO out1 SELECT auction, {} FROM bid;",
        vec!["price"; 900].join(" + ")
    );
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(move || spate_sql::plan(&sql, 2).map(|_| ()))
        .unwrap()
        .join()
        .unwrap()
        .unwrap();
}

#[test]
fn flink_string_functions_name_what_is_wrong_with_their_arguments() {
    let (text, at) = error(
        "CREATE TABLE out2 (a VARCHAR) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out2\nSELECT REGEXP_EXTRACT(url, '(?<=id=)[0-9]+') FROM bid;",
    );
    assert_eq!(at, Some((line(3), 28)), "{text}");
    assert!(
        text.contains("REGEXP_EXTRACT pattern '(?<=id=)[0-9]+' is not a valid regular expression")
            && text.contains("look-around"),
        "{text}"
    );
    let (text, _) = error(
        "CREATE TABLE out2 (a VARCHAR) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out2 SELECT SPLIT_INDEX(url, '/') FROM bid;",
    );
    assert!(
        text.contains("SPLIT_INDEX(str, separator, index) takes 3 arguments, not 2"),
        "{text}"
    );
}

#[test]
fn functions_spate_cannot_give_flinks_meaning_are_refused_by_name() {
    let (text, at) = error(
        "CREATE TABLE out2 (a BIGINT, t TIMESTAMP(3)) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out2\nSELECT auction, NOW() FROM bid;",
    );
    assert_eq!(at, Some((line(3), 17)), "{text}");
    assert!(
        text.contains("NOW: Flink evaluates it for every record") && text.contains("TIMESTAMP_LTZ"),
        "{text}"
    );
    assert_eq!(text.matches("NOW:").count(), 1, "said once: {text}");
    let (text, _) = error(
        "CREATE TABLE out2 (a BIGINT, t TIMESTAMP(3)) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out2 SELECT auction, CURRENT_TIMESTAMP FROM bid;",
    );
    assert!(
        text.contains("CURRENT_TIMESTAMP: Flink evaluates"),
        "{text}"
    );

    let (text, at) = error(
        "CREATE TABLE out2 (a VARCHAR) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out2 SELECT REGEXP_REPLACE(url, 'x*', '-') FROM bid;",
    );
    assert_eq!(at, Some((line(2), 45)), "{text}");
    assert!(text.contains("can match the empty string"), "{text}");
    let (text, _) = error(
        "CREATE TABLE out2 (a VARCHAR) WITH ('connector' = 'blackhole');\n\
         INSERT INTO out2 SELECT CONCAT(url, price) FROM bid;",
    );
    assert!(
        text.contains("CONCAT(s1, s2, ...): argument 2 is Int64, not a string"),
        "{text}"
    );
}

//! Two exchanges talking over loopback TCP, as two workers would.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use spate_api::StreamElement;
use spate_network::{
    DataServer, Exchange, ExchangeConfig, InputChannel, InputGate, SubpartitionId, queue,
};

fn batch(first: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
    RecordBatch::try_new(
        schema,
        vec![Arc::new(Int64Array::from_iter_values(first..first + 10))],
    )
    .unwrap()
}

fn id(subpartition: u32) -> SubpartitionId {
    SubpartitionId {
        job_id: "job".into(),
        vertex: 0,
        subtask: 0,
        attempt: 0,
        edge: 0,
        subpartition,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_holds_back_only_its_channel_and_buffers_at_most_its_credits() {
    let config = ExchangeConfig {
        queue_capacity: 3,
        credits_per_channel: 2,
    };
    let producer = Exchange::new(config);
    let consumer = Exchange::new(config);
    let server = DataServer::start("127.0.0.1:0", producer.registry.clone())
        .await
        .unwrap();
    let address = server.local_addr().to_string();

    // Two subpartitions of one producer, read over one connection as two logical channels.
    let mut senders = Vec::new();
    for sub in 0..2 {
        let (tx, rx) = queue(config.queue_capacity, producer.gauge.clone());
        producer.registry.register(id(sub), rx);
        senders.push(tx);
    }
    let slow = consumer
        .connections
        .open_channel(&address, &id(0), 2)
        .await
        .unwrap();
    let fast = consumer
        .connections
        .open_channel(&address, &id(1), 2)
        .await
        .unwrap();

    const N: i64 = 200;
    let fast_tx = senders.pop().unwrap();
    let slow_tx = senders.pop().unwrap();
    let fast_producer = tokio::spawn(async move {
        for i in 0..N {
            fast_tx
                .send(StreamElement::Batch(batch(i * 10)))
                .await
                .unwrap();
        }
        fast_tx.send(StreamElement::End).await.unwrap();
    });
    let slow_producer = tokio::spawn(async move {
        for i in 0..N {
            slow_tx
                .send(StreamElement::Batch(batch(i * 10)))
                .await
                .unwrap();
            slow_tx.send(StreamElement::Watermark(i)).await.unwrap();
        }
        slow_tx.send(StreamElement::End).await.unwrap();
    });

    // The slow channel is not read at all: the fast one must still complete.
    let mut fast_gate = InputGate::new(vec![InputChannel::Remote(fast)]);
    let mut next = 0;
    while let Some((_, element)) = fast_gate.next().await {
        match element.unwrap() {
            StreamElement::Batch(b) => {
                let n = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
                assert_eq!(n.value(0), next, "batches arrive in order");
                next += 10;
            }
            StreamElement::End => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(next, N * 10);
    fast_producer.await.unwrap();

    // The stalled channel holds its queue on the producer, its credits on the consumer, and one
    // element in the sender's hand: the producer is blocked, not buffering without end.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!slow_producer.is_finished());
    let held = producer.gauge.current() + consumer.gauge.current();
    assert!(
        held <= (config.queue_capacity + 2 + 1) as u64,
        "{held} batches held"
    );

    let mut slow_gate = InputGate::new(vec![InputChannel::Remote(slow)]);
    let (mut batches, mut watermarks) = (0, Vec::new());
    while let Some((_, element)) = slow_gate.next().await {
        match element.unwrap() {
            StreamElement::Batch(b) => {
                assert_eq!(b.column(0).len(), 10);
                batches += 1;
            }
            StreamElement::Watermark(w) => watermarks.push(w),
            StreamElement::End => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    slow_producer.await.unwrap();
    assert_eq!(batches, N);
    assert_eq!(watermarks, (0..N).collect::<Vec<_>>());
    assert_eq!(
        producer.gauge.current() + consumer.gauge.current(),
        0,
        "nothing left buffered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_peer_fails_the_channel_with_its_address() {
    // A "worker" that accepts the connection and dies at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (socket, _) = listener.accept().await.unwrap();
        drop(socket);
    });
    let exchange = Exchange::new(ExchangeConfig::default());
    // Depending on when the peer's death is noticed, opening fails, or the open channel fails.
    let error = match exchange.connections.open_channel(&address, &id(0), 2).await {
        Err(e) => e.to_string(),
        Ok(channel) => {
            let mut gate = InputGate::new(vec![InputChannel::Remote(channel)]);
            let (_, element) = gate.next().await.expect("the failure is delivered");
            let error = element
                .expect_err("a lost connection is an error")
                .to_string();
            assert!(
                gate.next().await.is_none(),
                "the failed channel leaves the gate"
            );
            error
        }
    };
    assert!(error.contains(&address), "{error}");
}

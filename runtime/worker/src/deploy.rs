//! Turns a deployment request into a runnable task: operators, outputs, then inputs.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use spate_api::{
    KeyGroupRange, OperatorContext, RestoredState, SourceFactory, Split, StateBackendKind,
    StateContext, WatermarkStrategy,
};
use spate_graph::{JobGraph, NodeKind, Partitioning};
use spate_network::{
    Exchange, InputChannel, InputGate, InputGates, Partitioner, SubpartitionId, queue,
};
use spate_proto::v1::{DeployTaskRequest, InputGateDescriptor};
use spate_task::{
    Canceler, Chain, ChainedOperator, Checkpointing, OutputWriter, SourceInput, SplitGroup, Task,
    TaskInput, TaskMetrics, WatermarkGenerator, restored_groups,
};

/// How long a task waits for a producer on this worker to register the subpartition it reads.
const LOCAL_PRODUCER_TIMEOUT: Duration = Duration::from_secs(60);

/// What a task needs for its state: where to keep it, what to start from, and its end of the
/// checkpoint plumbing (`None` without checkpoints).
pub struct TaskStateSetup {
    pub dir: PathBuf,
    pub backend: StateBackendKind,
    /// By operator id.
    pub restored: HashMap<String, RestoredState>,
    pub checkpointing: Option<Checkpointing>,
}

/// A task whose operators and outputs exist, waiting for its input channels.
pub struct PendingTask {
    task: Task,
    job_id: String,
    /// Each descriptor with the logical input of the first operator its edge feeds.
    inputs: Vec<(usize, InputGateDescriptor)>,
    /// How many logical inputs the first operator has.
    num_inputs: usize,
    own_data_address: String,
}

pub fn prepare(
    request: &DeployTaskRequest,
    graph: &JobGraph,
    exchange: &Exchange,
    own_data_address: &str,
    canceler: &Canceler,
    metrics: &Arc<TaskMetrics>,
    mut state: TaskStateSetup,
) -> anyhow::Result<PendingTask> {
    let id = request.task.as_ref().ok_or_else(|| anyhow!("no task id"))?;
    let vertex = graph
        .vertex(id.vertex)
        .ok_or_else(|| anyhow!("the job graph has no vertex {}", id.vertex))?;
    if id.subtask >= vertex.parallelism {
        bail!(
            "subtask {} is beyond the parallelism {} of '{}'",
            id.subtask,
            vertex.parallelism,
            vertex.name
        );
    }
    let mut source = None;
    let mut operators = Vec::new();
    for (position, &node_id) in vertex.nodes.iter().enumerate() {
        let node = graph.node(node_id);
        let operator_id = node.operator_id();
        let ctx = OperatorContext {
            operator_name: node.name.clone(),
            subtask: id.subtask,
            parallelism: vertex.parallelism,
            max_parallelism: graph.max_parallelism,
            cancel: canceler.flag.clone(),
            state: StateContext {
                dir: state.dir.join(&operator_id),
                backend: state.backend,
                key_groups: KeyGroupRange::of_subtask(
                    id.subtask,
                    vertex.parallelism,
                    graph.max_parallelism,
                ),
                restored: state.restored.remove(&operator_id),
                checkpointing: state.checkpointing.is_some(),
            },
        };
        match &node.kind {
            NodeKind::Source {
                factory,
                watermarks,
            } if position == 0 => {
                let groups = split_groups(factory.as_ref(), &ctx, watermarks)
                    .map_err(|e| e.in_operator(&node.name))?;
                source = Some(TaskInput::Source(SourceInput::new(operator_id, groups)));
            }
            NodeKind::Source { .. } => {
                bail!("source '{}' is not at the head of its chain", node.name)
            }
            NodeKind::Operator { factory, .. } => {
                let mut operator = factory
                    .create(&ctx)
                    .map_err(|e| e.in_operator(&node.name))?;
                operator.open(&ctx).map_err(|e| e.in_operator(&node.name))?;
                operators.push(ChainedOperator {
                    id: operator_id,
                    name: node.name.clone(),
                    operator,
                });
            }
        }
    }

    let mut outputs = Vec::new();
    for output in &request.outputs {
        let edge = graph
            .edges
            .get(output.edge as usize)
            .ok_or_else(|| anyhow!("the job graph has no edge {}", output.edge))?;
        let partitioner = match &edge.partitioning {
            Partitioning::Forward => Partitioner::Forward,
            Partitioning::Broadcast => Partitioner::Broadcast,
            Partitioning::Rebalance => Partitioner::Rebalance {
                next: id.subtask as usize,
            },
            Partitioning::Hash(keys) => {
                Partitioner::hash(&edge.schema, keys, graph.max_parallelism)?
            }
        };
        let mut senders = Vec::new();
        for subpartition in 0..output.subpartitions {
            let (tx, rx) = queue(exchange.config.queue_capacity, exchange.gauge.clone());
            exchange.registry.register(
                SubpartitionId {
                    job_id: id.job_id.clone(),
                    vertex: id.vertex,
                    subtask: id.subtask,
                    attempt: id.attempt,
                    edge: output.edge,
                    subpartition,
                },
                rx,
            );
            senders.push(tx);
        }
        outputs.push(OutputWriter::new(partitioner, senders));
    }

    let input = source.unwrap_or_else(|| TaskInput::Gates(InputGates::new(Vec::new())));
    let inputs = request
        .inputs
        .iter()
        .map(|gate| {
            let edge = graph
                .edges
                .get(gate.edge as usize)
                .filter(|e| e.to == id.vertex);
            let edge = edge.ok_or_else(|| {
                anyhow!(
                    "input edge {} does not lead to vertex {}",
                    gate.edge,
                    id.vertex
                )
            })?;
            Ok((edge.to_input as usize, gate.clone()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(PendingTask {
        task: Task {
            input,
            chain: Chain::new(operators),
            outputs,
            metrics: metrics.clone(),
            canceler: canceler.clone(),
            checkpointing: state.checkpointing,
        },
        job_id: id.job_id.clone(),
        inputs,
        num_inputs: graph.num_inputs(id.vertex),
        own_data_address: own_data_address.to_string(),
    })
}

/// The source readers of a subtask. A fresh start reads the splits assigned round-robin with
/// one reader; a restore continues every split group of the checkpoint, groups assigned
/// round-robin, each with its own reader, positions and watermark.
fn split_groups(
    factory: &dyn SourceFactory,
    ctx: &OperatorContext,
    watermarks: &Option<WatermarkStrategy>,
) -> spate_api::Result<Vec<SplitGroup>> {
    let generator = || watermarks.clone().map(WatermarkGenerator::new);
    let restored = ctx
        .state
        .restored
        .as_ref()
        .map(|r| restored_groups(&r.entries))
        .unwrap_or_default();
    if restored.is_empty() {
        let splits: Vec<Split> = factory
            .splits(ctx.parallelism)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % ctx.parallelism == ctx.subtask)
            .map(|(_, split)| split)
            .collect();
        let ids: Vec<String> = splits.iter().map(|s| s.id.clone()).collect();
        let reader = factory.create_reader(splits, ctx)?;
        return Ok(vec![SplitGroup::new(&ids, reader, generator())]);
    }
    let mut groups = Vec::new();
    for (index, (ids, entries)) in restored.into_iter().enumerate() {
        if index as u32 % ctx.parallelism != ctx.subtask {
            continue;
        }
        let mut group_ctx = ctx.clone();
        if let Some(restored) = &mut group_ctx.state.restored {
            restored.entries = entries;
        }
        let splits = ids.iter().map(Split::new).collect();
        let reader = factory.create_reader(splits, &group_ctx)?;
        groups.push(SplitGroup::new(&ids, reader, generator()));
    }
    Ok(groups)
}

impl PendingTask {
    /// Opens every input channel (local subpartitions straight from the registry, remote ones
    /// through the connection to the producer's worker) into one gate per logical input: the
    /// edges of a union share their input's gate.
    pub async fn connect(mut self, exchange: &Exchange) -> anyhow::Result<Task> {
        if self.inputs.is_empty() {
            return Ok(self.task);
        }
        let mut channels: Vec<Vec<InputChannel>> =
            (0..self.num_inputs).map(|_| Vec::new()).collect();
        for (input, gate) in &self.inputs {
            let Some(channels) = channels.get_mut(*input) else {
                bail!(
                    "edge {} feeds input {input} of an operator with {} input(s)",
                    gate.edge,
                    self.num_inputs
                );
            };
            for channel in &gate.channels {
                let id = SubpartitionId {
                    job_id: self.job_id.clone(),
                    vertex: gate.producer_vertex,
                    subtask: channel.producer_subtask,
                    attempt: channel.producer_attempt,
                    edge: gate.edge,
                    subpartition: channel.subpartition,
                };
                let opened = if channel.data_address == self.own_data_address {
                    let queue = exchange.registry.take(&id, LOCAL_PRODUCER_TIMEOUT).await?;
                    InputChannel::Local {
                        queue,
                        name: id.to_string(),
                    }
                } else {
                    InputChannel::Remote(
                        exchange
                            .connections
                            .open_channel(
                                &channel.data_address,
                                &id,
                                exchange.config.credits_per_channel,
                            )
                            .await
                            .with_context(|| format!("opening input channel {id}"))?,
                    )
                };
                channels.push(opened);
            }
        }
        if let Some(empty) = channels.iter().position(Vec::is_empty) {
            bail!("input {empty} of the task has no channel");
        }
        let gates = channels.into_iter().map(InputGate::new).collect();
        self.task.input = TaskInput::Gates(InputGates::new(gates));
        Ok(self.task)
    }
}

use spate_api::{Operator, OperatorError, OperatorSnapshot, Output, StreamElement, Timestamp};

pub struct ChainedOperator {
    /// Stable id of the operator in the stream graph: its state is checkpointed under it.
    pub id: String,
    pub name: String,
    pub operator: Box<dyn Operator>,
}

/// Operators joined by forward edges, called one after another without any queue in between.
pub struct Chain {
    operators: Vec<ChainedOperator>,
}

impl Chain {
    pub fn new(operators: Vec<ChainedOperator>) -> Self {
        Chain { operators }
    }

    /// Pushes an element that came in on logical input `input` of the task into the first
    /// operator; what falls out of the last one lands in `emitted`.
    pub fn push_input(
        &mut self,
        input: usize,
        element: StreamElement,
        emitted: &mut Vec<StreamElement>,
    ) -> Result<(), OperatorError> {
        self.push_from(0, input, element, emitted)
    }

    /// Input `input`'s own watermark advanced: the first operator is told.
    pub fn input_watermark(
        &mut self,
        input: usize,
        watermark: Timestamp,
        emitted: &mut Vec<StreamElement>,
    ) -> Result<(), OperatorError> {
        self.head(emitted, |op, out| {
            op.process_input_watermark(input, watermark, out)
        })
    }

    /// Every channel of input `input` ended: the first operator is told.
    pub fn end_input(
        &mut self,
        input: usize,
        emitted: &mut Vec<StreamElement>,
    ) -> Result<(), OperatorError> {
        self.head(emitted, |op, out| op.end_input(input, out))
    }

    /// Calls the first operator, and passes what it produced down the chain.
    fn head(
        &mut self,
        emitted: &mut Vec<StreamElement>,
        call: impl FnOnce(&mut dyn Operator, &mut Output) -> spate_api::Result<()>,
    ) -> Result<(), OperatorError> {
        let Some(op) = self.operators.first_mut() else {
            return Ok(());
        };
        let mut out = Output::default();
        call(op.operator.as_mut(), &mut out).map_err(|e| e.in_operator(&op.name))?;
        self.forward(0, out, emitted)
    }

    /// Pushes an element into input `input` of operator `index`; past the last operator it
    /// leaves the chain.
    fn push_from(
        &mut self,
        index: usize,
        input: usize,
        element: StreamElement,
        emitted: &mut Vec<StreamElement>,
    ) -> Result<(), OperatorError> {
        let Some(op) = self.operators.get_mut(index) else {
            emitted.push(element);
            return Ok(());
        };
        let mut out = Output::default();
        let result = match element {
            StreamElement::Batch(batch) => op.operator.process_batch_from(input, batch, &mut out),
            StreamElement::Watermark(wm) => op.operator.process_watermark(wm, &mut out),
            // Idleness and the end of input are the task's business, not the operators'.
            other => {
                emitted.push(other);
                return Ok(());
            }
        };
        result.map_err(|e| e.in_operator(&op.name))?;
        self.forward(index, out, emitted)
    }

    fn forward(
        &mut self,
        index: usize,
        mut out: Output,
        emitted: &mut Vec<StreamElement>,
    ) -> Result<(), OperatorError> {
        let produced: Vec<StreamElement> = out.drain().collect();
        // Within a chain, every operator after the first has one input.
        for element in produced {
            self.push_from(index + 1, 0, element, emitted)?;
        }
        Ok(())
    }

    pub fn next_processing_timer(&self) -> Option<Timestamp> {
        self.operators
            .iter()
            .filter_map(|op| op.operator.next_processing_timer())
            .min()
    }

    pub fn on_processing_time(
        &mut self,
        now: Timestamp,
        emitted: &mut Vec<StreamElement>,
    ) -> Result<(), OperatorError> {
        for index in 0..self.operators.len() {
            let mut out = Output::default();
            let op = &mut self.operators[index];
            if op
                .operator
                .next_processing_timer()
                .is_some_and(|t| t <= now)
            {
                op.operator
                    .on_processing_time(now, &mut out)
                    .map_err(|e| e.in_operator(&op.name))?;
                self.forward(index, out, emitted)?;
            }
        }
        Ok(())
    }

    /// Ends the input: each operator finishes in order, and what it flushes reaches the rest.
    pub fn finish(&mut self, emitted: &mut Vec<StreamElement>) -> Result<(), OperatorError> {
        for index in 0..self.operators.len() {
            let mut out = Output::default();
            let op = &mut self.operators[index];
            op.operator
                .finish(&mut out)
                .map_err(|e| e.in_operator(&op.name))?;
            self.forward(index, out, emitted)?;
        }
        Ok(())
    }

    /// Each operator's snapshot for checkpoint `id`, by operator id, in chain order.
    pub fn snapshot(&mut self, id: u64) -> Result<Vec<(String, OperatorSnapshot)>, OperatorError> {
        let mut snapshots = Vec::with_capacity(self.operators.len());
        for op in &mut self.operators {
            let snapshot = op
                .operator
                .snapshot_state(id)
                .map_err(|e| e.in_operator(&op.name))?;
            snapshots.push((op.id.clone(), snapshot));
        }
        Ok(snapshots)
    }

    pub fn notify_checkpoint_complete(&mut self, id: u64) -> Result<(), OperatorError> {
        for op in &mut self.operators {
            op.operator
                .notify_checkpoint_complete(id)
                .map_err(|e| e.in_operator(&op.name))?;
        }
        Ok(())
    }

    pub fn late_records_dropped(&self) -> u64 {
        self.operators
            .iter()
            .map(|op| op.operator.metrics().late_records_dropped)
            .sum()
    }
}

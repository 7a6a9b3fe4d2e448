use kube::CustomResourceExt;
use serde_json::Value;
use spate_operator::crd::{DesiredState, StreamJob, UpgradeMode};

fn repo(path: &str) -> String {
    let full = format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

#[test]
fn the_committed_crd_is_what_crdgen_generates() {
    let generated = serde_yaml::to_string(&StreamJob::crd()).unwrap();
    assert!(
        repo("crds/streamjob.yaml") == generated,
        "crds/streamjob.yaml is out of date: run `cargo run -p spate-operator --bin crdgen > crds/streamjob.yaml`"
    );
}

fn spec_schema() -> Value {
    let crd = serde_json::to_value(StreamJob::crd()).unwrap();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

#[test]
fn the_schema_constrains_types_enums_ranges_and_cross_field_rules() {
    let crd = serde_json::to_value(StreamJob::crd()).unwrap();
    let version = &crd["spec"]["versions"][0];
    assert_eq!(crd["spec"]["names"]["shortNames"][0], "sj");
    assert_eq!(
        version["subresources"]["scale"]["specReplicasPath"],
        ".spec.parallelism"
    );
    assert!(version["subresources"]["status"].is_object());

    let spec = spec_schema();
    let required: Vec<&str> = spec["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required, vec!["image", "job", "parallelism"]);
    assert_eq!(spec["properties"]["parallelism"]["minimum"], 1.0);
    let modes = &spec["properties"]["upgradeMode"]["enum"];
    assert_eq!(
        modes,
        &serde_json::json!(["stateless", "savepoint", "last-state"])
    );
    assert_eq!(
        spec["properties"]["state"]["enum"],
        serde_json::json!(["running", "suspended"])
    );
    let rules: Vec<&str> = spec["x-kubernetes-validations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rule"].as_str().unwrap())
        .collect();
    assert!(
        rules
            .iter()
            .any(|r| r.contains("self.maxParallelism >= self.parallelism")),
        "{rules:?}"
    );
    assert!(
        rules.iter().any(|r| r.contains("has(self.checkpointing)")),
        "{rules:?}"
    );
    let job_rules = &spec["properties"]["job"]["x-kubernetes-validations"][0]["rule"];
    assert_eq!(job_rules, "has(self.sql) != has(self.configMapRef)");
    assert_eq!(
        spec["properties"]["podTemplate"]["x-kubernetes-preserve-unknown-fields"],
        true
    );
}

#[test]
fn the_example_manifest_is_a_valid_stream_job() {
    let job: StreamJob = serde_yaml::from_str(&repo("examples/k8s/hop-count.yaml")).unwrap();
    assert_eq!(job.spec.parallelism, 2);
    assert_eq!(job.spec.upgrade_mode, UpgradeMode::Savepoint);
    assert_eq!(job.spec.state, DesiredState::Running);
    assert_eq!(job.spec.worker.slots, 2);
    assert!(
        job.spec
            .job
            .sql
            .as_deref()
            .unwrap()
            .contains("INSERT INTO counts")
    );
}

#[test]
fn a_manifest_with_a_wrong_enum_is_refused_naming_the_value() {
    let text =
        repo("examples/k8s/hop-count.yaml").replace("upgradeMode: savepoint", "upgradeMode: fast");
    let err = serde_yaml::from_str::<StreamJob>(&text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("unknown variant `fast`") && err.contains("last-state"),
        "{err}"
    );
}

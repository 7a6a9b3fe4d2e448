//! Prints the CustomResourceDefinitions of Spate's resources as YAML (`crds/` is this output).

use kube::CustomResourceExt;
use spate_operator::crd::StreamJob;

fn main() -> Result<(), serde_yaml::Error> {
    print!("{}", serde_yaml::to_string(&StreamJob::crd())?);
    Ok(())
}

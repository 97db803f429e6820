//! The package check (`scripts/package-inspect.py`, run by `make package-check`, `make deploy`
//! and, when cargo-lambda is installed, `make test`): what `sam build` leaves for upload must be
//! the bootstrap binary alone at the package's root, for the template's architecture, with the
//! built template pointing at it. Here it judges packages made by hand, good and broken, since
//! building a real one takes cargo-lambda.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const FUNCTION: &str = "CallHistoryFunction";

/// What `sam build` writes for the function: its part of the built template.
const BUILT_TEMPLATE: &str = "Resources:
  CallHistoryFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: rust-cargolambda
      SamResourceId: CallHistoryFunction
    Properties:
      CodeUri: CallHistoryFunction
      Handler: bootstrap
      Runtime: provided.al2023
";

/// An ELF header for a 64-bit little-endian executable of this machine, padded to `size`.
fn elf(machine: u16, size: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; size];
    bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
    bytes[16] = 2; // ET_EXEC
    bytes[18..20].copy_from_slice(&machine.to_le_bytes());
    bytes
}

const X86_64: u16 = 0x3E;
const AARCH64: u16 = 0xB7;

/// A build folder as `sam build` leaves it, with this bootstrap.
fn build_dir(bootstrap: Option<Vec<u8>>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("template.yaml"), BUILT_TEMPLATE).unwrap();
    let package = dir.path().join(FUNCTION);
    std::fs::create_dir(&package).unwrap();
    if let Some(bytes) = bootstrap {
        let path = package.join("bootstrap");
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

/// Runs the check; its exit status and what it printed.
fn inspect(dir: &Path) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package-inspect.py");
    let output = Command::new("python3")
        .arg(script)
        .arg(dir)
        .arg(FUNCTION)
        .output()
        .expect("python3 runs the package check");
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    (output.status.success(), text)
}

fn release_sized(machine: u16) -> Option<Vec<u8>> {
    Some(elf(machine, 3 * 1024 * 1024))
}

#[test]
fn bootstrap_alone_for_x86_64_passes() {
    let dir = build_dir(release_sized(X86_64));
    let (ok, text) = inspect(dir.path());
    assert!(ok, "{text}");
    assert!(text.contains("bootstrap alone"), "{text}");
}

#[test]
fn anything_beside_bootstrap_fails() {
    let dir = build_dir(release_sized(X86_64));
    let package = dir.path().join(FUNCTION);
    // What zipping the repository would bring along.
    std::fs::create_dir_all(package.join("target/release")).unwrap();
    std::fs::write(package.join("Cargo.toml"), "[package]").unwrap();
    let (ok, text) = inspect(dir.path());
    assert!(!ok);
    assert!(
        text.contains("more than bootstrap: Cargo.toml, target"),
        "{text}"
    );
}

#[test]
fn a_missing_or_wrong_bootstrap_fails() {
    let missing = build_dir(None);
    let (ok, text) = inspect(missing.path());
    assert!(!ok);
    assert!(text.contains("no bootstrap"), "{text}");

    let arm = build_dir(release_sized(AARCH64));
    let (ok, text) = inspect(arm.path());
    assert!(!ok);
    assert!(text.contains("not x86_64"), "{text}");

    let script = build_dir(Some(b"#!/bin/sh\necho hello\n".to_vec()));
    let (ok, text) = inspect(script.path());
    assert!(!ok);
    assert!(text.contains("not a 64-bit ELF"), "{text}");

    let not_executable = build_dir(release_sized(X86_64));
    let bootstrap = not_executable.path().join(FUNCTION).join("bootstrap");
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (ok, text) = inspect(not_executable.path());
    assert!(!ok);
    assert!(text.contains("not executable"), "{text}");
}

#[test]
fn a_template_that_still_points_at_the_source_fails() {
    // `sam deploy` of the source template (CodeUri: .) uploads the repository itself.
    let dir = build_dir(release_sized(X86_64));
    let source = BUILT_TEMPLATE.replace("CodeUri: CallHistoryFunction", "CodeUri: .");
    std::fs::write(dir.path().join("template.yaml"), source).unwrap();
    let (ok, text) = inspect(dir.path());
    assert!(!ok);
    assert!(
        text.contains("CodeUri of CallHistoryFunction is '.'"),
        "{text}"
    );

    let unbuilt = tempfile::tempdir().unwrap();
    let (ok, text) = inspect(unbuilt.path());
    assert!(!ok);
    assert!(text.contains("no built template"), "{text}");
}

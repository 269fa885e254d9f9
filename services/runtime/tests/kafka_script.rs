//! `deploy/local/kafka.sh install` as a newcomer meets it: a machine without
//! Java or Maven gets the exact command to run, and an install that was
//! interrupted is redone rather than trusted.

use std::path::{Path, PathBuf};
use std::process::Command;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/kafka.sh")
}

fn kafka_version() -> String {
    let pom = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/local/kafka/pom.xml"),
    )
    .unwrap();
    let start = pom.find("<kafka.version>").unwrap() + "<kafka.version>".len();
    let end = pom[start..].find('<').unwrap() + start;
    pom[start..end].to_owned()
}

#[test]
fn without_java_or_maven_the_error_names_what_to_install() {
    // A PATH with the shell tools the script uses, but no java and no mvn.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["bash", "dirname", "sed", "cat"] {
        let found = Command::new("bash")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .unwrap();
        let path = String::from_utf8(found.stdout).unwrap();
        std::os::unix::fs::symlink(path.trim(), bin.path().join(tool)).unwrap();
    }
    let output = Command::new(bin.path().join("bash"))
        .arg(script())
        .arg("install")
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("lacks\njava mvn"),
        "names both missing tools: {stderr}"
    );
    assert!(
        stderr.contains("sudo apt-get install -y openjdk-17-jre-headless maven"),
        "{stderr}"
    );
}

#[test]
fn an_interrupted_install_is_redone_not_trusted() {
    let tools = tempfile::tempdir().unwrap();
    let home = tools.path().join(format!("kafka-{}", kafka_version()));
    // What a killed install leaves: a folder with some jars, no marker.
    std::fs::create_dir_all(home.join("libs")).unwrap();
    std::fs::write(home.join("libs/half-downloaded.jar"), b"").unwrap();

    let output = Command::new("bash")
        .arg(script())
        .arg("install")
        .env("PATROLI_TOOLS_DIR", tools.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let libs = home.join("libs");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        libs.to_str().unwrap()
    );
    assert!(home.join(".complete").is_file());
    assert!(!libs.join("half-downloaded.jar").exists());
    assert!(libs
        .join(format!("kafka_2.13-{}.jar", kafka_version()))
        .is_file());
}

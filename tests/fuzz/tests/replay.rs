//! Replays every committed fuzz corpus through its target's entry, on
//! stable: hand-made seeds, and each input that once crashed a target
//! (kept in the corpus when the crash was fixed), so a fixed crash stays
//! fixed. `make fuzz` grows nothing here: it explores in a scratch
//! directory and reads these as seeds.
use std::path::Path;

fn replay(target: &str) {
    let t = aggdom_fuzz::TARGETS
        .iter()
        .find(|t| t.name == target)
        .expect("a target of that name");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(t.corpus);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: an empty corpus", dir.display());
    for file in files {
        let data = std::fs::read(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if std::panic::catch_unwind(|| (t.run)(&data)).is_err() {
            panic!("{target}: corpus input {name} fails");
        }
    }
}

macro_rules! replay {
    ($($target:ident),* $(,)?) => {
        $(
            #[test]
            fn $target() {
                replay(stringify!($target));
            }
        )*

        /// Every target has its test here.
        #[test]
        fn every_target_is_replayed() {
            let tested = [$(stringify!($target)),*];
            for t in aggdom_fuzz::TARGETS {
                assert!(tested.contains(&t.name), "no replay test for {}", t.name);
            }
        }
    };
}

replay!(
    xs_wire,
    xs_client,
    config,
    metrics_http,
    grant_split,
    e1000_rx,
    virtio_net_rx,
    line_editor,
    start_info,
    acpi_tables,
    ops_and_frames,
    frontend,
    rx_coalesce,
);

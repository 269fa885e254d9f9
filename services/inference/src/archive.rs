//! The claim archive a loaded model searches, edited while the model
//! serves (`claims.v1`). Scoring takes the current index as a snapshot (an
//! `Arc`, cloned under a lock held only for that clone); an edit changes a
//! copy, rebuilds its search matrix and swaps it in. A batch therefore
//! never waits for an edit's embedding or rebuild, and always sees one
//! whole archive, before or after a change.

use std::sync::{Arc, Mutex, PoisonError};

use crate::claims::ClaimIndex;
use crate::ModelError;

pub struct ClaimArchive {
    current: Mutex<Arc<ClaimIndex>>,
    /// Held across an edit, so two edits cannot both start from the same
    /// snapshot and lose one another's changes.
    edits: Mutex<()>,
    /// Matches at or above this similarity are shown with a prediction.
    pub match_threshold: f32,
}

impl ClaimArchive {
    pub fn new(mut index: ClaimIndex, match_threshold: f32) -> Result<Self, ModelError> {
        index.prepare()?;
        Ok(Self {
            current: Mutex::new(Arc::new(index)),
            edits: Mutex::new(()),
            match_threshold,
        })
    }

    /// The archive as it is now; later edits do not change it.
    pub fn snapshot(&self) -> Arc<ClaimIndex> {
        // Nothing can panic while this lock is held (an Arc clone or
        // store), so a poisoned lock still guards a whole value.
        Arc::clone(&self.current.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Applies `edit` to a copy of the archive and, if it succeeds, makes
    /// the copy (its search matrix rebuilt) the archive. A failed or
    /// panicking edit leaves the archive as it was.
    pub fn edit<T>(
        &self,
        edit: impl FnOnce(&mut ClaimIndex) -> Result<T, ModelError>,
    ) -> Result<T, ModelError> {
        let _one_at_a_time = self.edits.lock().unwrap_or_else(PoisonError::into_inner);
        let mut next = ClaimIndex::clone(&self.snapshot());
        let out = edit(&mut next)?;
        next.prepare()?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{Claim, Verdict};

    fn claim(id: &str) -> Claim {
        Claim {
            id: id.into(),
            verdict: Verdict::Hoax,
            source: "test".into(),
            text: None,
            date: None,
            url: None,
        }
    }

    #[test]
    fn a_snapshot_keeps_its_archive_while_an_edit_swaps_in_a_new_one() {
        let archive = ClaimArchive::new(ClaimIndex::new(2), 0.9).unwrap();
        archive
            .edit(|index| index.upsert(claim("a"), &[1.0, 0.0]))
            .unwrap();
        let before = archive.snapshot();
        let size = archive
            .edit(|index| {
                index.upsert(claim("b"), &[0.0, 1.0])?;
                Ok(index.len())
            })
            .unwrap();
        assert_eq!((before.len(), size, archive.snapshot().len()), (1, 2, 2));
        // The new archive is searchable at once (its matrix was rebuilt).
        let near = archive
            .snapshot()
            .nearest(&[vec![0.0, 2.0]], &|_, _| false)
            .unwrap();
        assert_eq!(near[0].hoax[0].0, 1);
    }

    #[test]
    fn a_failed_edit_leaves_the_archive_as_it_was() {
        let archive = ClaimArchive::new(ClaimIndex::new(2), 0.9).unwrap();
        let err = archive
            .edit(|index| {
                index.upsert(claim("a"), &[1.0, 0.0])?;
                index.upsert(claim("b"), &[1.0])
            })
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad model format: claim b: vector has 1 values, the index 2"
        );
        assert!(archive.snapshot().is_empty());
    }
}

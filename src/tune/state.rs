//! The tune's state file, so a killed tune resumes or rolls back.

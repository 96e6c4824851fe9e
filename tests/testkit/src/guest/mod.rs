//! Guest disk images for the inspection tests, built without root from real tools.

pub mod hive;
pub mod images;
pub mod lvm;
pub mod tools;

//! Roster

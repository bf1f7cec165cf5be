//! rotor-sim: the deterministic simulator. Not built yet; it lands with the simulator issue
//! (scenario files, the Kaspi model, workloads, faults, invariant verdicts). It will drive
//! `rotor-engine` on a virtual clock.

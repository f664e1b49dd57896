//! The scale-out report (`--servers 1,2`, `--backend pg-cluster`): one
//! table with a row per server count (throughput, latency p50/p99 per kind
//! and overall, errors by code, server memory), then per run where the
//! transactions went and the data check, and a section for the estimate of
//! how it scales.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::{Args, Run};

fn millis(h: &Histogram<u64>, quantile: f64) -> f64 {
    h.value_at_quantile(quantile) as f64 / 1000.0
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

/// The report of `runs`, produced by `command`.
pub fn markdown(command: &str, args: &Args, runs: &[Run]) -> anyhow::Result<String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let version = runs.first().map_or("", |run| run.version.as_str());
    let cluster = args.backend == "pg-cluster";
    let mut s = String::new();
    writeln!(
        s,
        "# GraphQL server under load: {}",
        if cluster {
            "server processes and a read replica"
        } else {
            "server processes"
        }
    )?;
    writeln!(s)?;
    writeln!(s, "Produced by `{command}`")?;
    writeln!(s)?;
    writeln!(
        s,
        "on {cores} cores (shared by the clients, every server process and {}), {version}, \
         loopback. Each server count runs on a fresh database seeded with the demo data (5 \
         group types, 60 groups, 300 users, 900 memberships); every server is its own process \
         (release build, default `Config`: pool of 10, 5 s acquire, 10 s statement, 30 s \
         request limits; {}{}) on that one database, as stateless servers side by side would \
         be, and client `k` of {} talks to server `k % servers`, sending one request at a time \
         for {} s. Mix per request as in `LOAD.md`: 55% nested read, 20% update of one of 20 \
         hot users (read its `lastchange`, then `userUpdate`), 5% update with a stale \
         `lastchange`, 10% `userInsert` + `membershipAdd`, 10% `membershipAdd` of a random \
         pair.",
        if cluster {
            "the database servers"
        } else {
            "the database server"
        },
        if args.auth {
            "`ROSTER_AUTH=jwt`, HS256"
        } else {
            "authentication off"
        },
        if cluster {
            "; `pool.replicas([streaming replica])`: a request reads from the replica until it \
             writes, then from the primary. The PostgreSQL primary and its streaming replica \
             run on this machine too; the load starts once the replica has replayed the seeded \
             data"
        } else {
            ""
        },
        args.clients,
        args.seconds
    )?;
    writeln!(s)?;

    let kinds: BTreeSet<&str> = runs
        .iter()
        .flat_map(|run| run.report.latency.keys().copied())
        .collect();
    write!(s, "| servers | requests/s | all p50 / p99 ms |")?;
    for kind in &kinds {
        write!(s, " {kind} p50 / p99 ms |")?;
    }
    writeln!(s, " errors by code | server RSS after (peak) MiB |")?;
    write!(s, "|--:|--:|--:|")?;
    for _ in &kinds {
        write!(s, "--:|")?;
    }
    writeln!(s, "---|---|")?;
    for run in runs {
        let overall = run.report.overall();
        write!(
            s,
            "| {} | {:.0} | {:.1} / {:.1} |",
            run.servers,
            run.report.throughput(),
            millis(&overall, 0.5),
            millis(&overall, 0.99)
        )?;
        for kind in &kinds {
            match run.report.latency.get(kind) {
                Some(h) => write!(s, " {:.1} / {:.1} |", millis(h, 0.5), millis(h, 0.99))?,
                None => write!(s, " – |")?,
            }
        }
        let errors: Vec<String> = run
            .report
            .errors
            .iter()
            .map(|(code, n)| format!("`{code}` {n}"))
            .collect();
        let memory: Vec<String> = run
            .memory
            .iter()
            .map(|(_, after)| match after {
                Some((rss, peak)) => format!("{:.1} ({:.1})", mib(*rss), mib(*peak)),
                None => "n/a".to_owned(),
            })
            .collect();
        writeln!(
            s,
            " {} | {} |",
            if errors.is_empty() {
                "none".to_owned()
            } else {
                errors.join(", ")
            },
            memory.join(", ")
        )?;
    }
    writeln!(s)?;
    writeln!(
        s,
        "Only `CONFLICT` is expected (every stale update, and fresh updates that lose a race \
         for a hot user{}). Server RSS: one figure per server process.",
        if cluster {
            ", or that read a `lastchange` the replica had not yet replayed"
        } else {
            ""
        }
    )?;
    writeln!(s)?;
    for run in runs {
        write!(
            s,
            "- **{} server{}**: {} requests in {:.1} s; stale updates {} sent, {} accepted.",
            run.servers,
            if run.servers == 1 { "" } else { "s" },
            run.report.requests(),
            run.report.elapsed.as_secs_f64(),
            run.report
                .latency
                .get("stale update")
                .map_or(0, |h| h.len()),
            run.report.stale_accepted
        )?;
        if let Some((primary, replica)) = run.transactions {
            let total = (primary + replica).max(1);
            write!(
                s,
                " Transactions in the run's database (`pg_stat_database`, the replica's health \
                 checks included): {primary} on the primary, {replica} on the replica ({:.0}% \
                 on the replica).",
                replica as f64 * 100.0 / total as f64
            )?;
        }
        if let Some(wait) = run.replay_wait {
            write!(
                s,
                " The replica replayed the seeded data {} ms after the servers were up.",
                wait.as_millis()
            )?;
        }
        match &run.check {
            Ok(c) => writeln!(
                s,
                " Data check (on the primary): passed; {} successful updates over {} users, \
                 the last of each stored; {} inserted users present; {} `membershipAdd` \
                 answers, every pair present once, memberships {} → {}.",
                run.report.updates.len(),
                c.updated_users,
                c.inserted_users,
                run.report.memberships.len(),
                c.memberships_before,
                c.memberships_after
            )?,
            Err(e) => writeln!(s, " Data check: **FAILED**: {e:#}")?,
        }
    }
    writeln!(s)?;
    writeln!(s, "## How it scales")?;
    writeln!(s)?;
    writeln!(
        s,
        "Where the time goes on these {cores} shared cores, and a paper estimate of what more \
         server processes, cores and replicas buy: docs/scale-out.md, \"Measured\" (written \
         by hand from these figures; this file is regenerated by the command above)."
    )?;
    Ok(s)
}

//! The database's schema, versioned: each migration runs once, in order, in one transaction under
//! an advisory lock (workers starting together apply it once). A database set up by a newer
//! kling-batch is refused rather than written with an older idea of its tables.

use super::StateError;
use tokio_postgres::Client;

/// The schema this build writes.
pub const SCHEMA_VERSION: i32 = 2;

/// Migration `n` (1-based) brings the schema from version n-1 to n.
const MIGRATIONS: &[&str] = &[
    r#"
create table kb_sweeps (
    id bigserial primary key,
    name text not null unique,
    plan_digest text not null,
    jobs integer not null,
    manifest text,
    run_id text not null,
    settings text,
    cap bigint,
    spent bigint not null default 0,
    reserved bigint not null default 0,
    rate double precision not null default 2,
    paused_until timestamptz,
    created_at timestamptz not null default now()
);
create table kb_jobs (
    sweep bigint not null references kb_sweeps (id),
    idx integer not null,
    job_id text not null,
    parent_idx integer,
    state text not null default 'open',
    reserved bigint not null default 0,
    cost bigint not null default 0,
    owner text,
    lease_until timestamptz,
    primary key (sweep, idx)
);
create index kb_jobs_claimable on kb_jobs (sweep, state, lease_until);
create table kb_records (
    sweep bigint not null,
    seq bigserial,
    job_id text,
    worker text not null,
    record text not null,
    at timestamptz not null default now(),
    primary key (sweep, seq)
);
create index kb_records_job on kb_records (sweep, job_id);
create table kb_workers (
    sweep bigint not null,
    worker text not null,
    host text not null,
    pid integer not null,
    started_at timestamptz not null default now(),
    heartbeat_at timestamptz not null default now(),
    in_flight integer not null default 0,
    finished_at timestamptz,
    primary key (sweep, worker)
);
"#,
    // 2: fencing. Each claim of a job takes the next `fence`, and a worker's writes for the job
    // carry the fence of its claim: a stale one is refused. A group of records is committed once
    // (`kb_groups`, with what became of each record) even when its commit's answer was lost. The
    // cap is the sweep's, set once (`cap_set`) and then changed only on purpose.
    r#"
alter table kb_jobs add column fence bigint not null default 0;
alter table kb_sweeps add column cap_set boolean not null default false;
update kb_sweeps set cap_set = true where cap is not null;
create table kb_groups (
    sweep bigint not null,
    worker text not null,
    seq bigint not null,
    outcomes text not null,
    primary key (sweep, worker, seq)
);
"#,
];

/// Brings the database to `SCHEMA_VERSION`.
pub async fn migrate(client: &mut Client) -> Result<(), StateError> {
    let tx = client.transaction().await?;
    // One migrating worker at a time (the number is this tool's, arbitrary but fixed).
    tx.execute("select pg_advisory_xact_lock(7142180901)", &[]).await?;
    tx.execute("create table if not exists kb_schema (version integer not null)", &[])
        .await?;
    let found: Option<i32> = tx
        .query_opt("select max(version) from kb_schema", &[])
        .await?
        .and_then(|row| row.get(0));
    let found = found.unwrap_or(0);
    if found > SCHEMA_VERSION {
        return Err(StateError::Newer {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.batch_execute(sql).await?;
        tx.execute("delete from kb_schema", &[]).await?;
        tx.execute("insert into kb_schema (version) values ($1)", &[&(i as i32 + 1)])
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

//! Store tests: every test runs against SQLite (a file in a temporary
//! directory, always) and PostgreSQL (only when `HOTLINE_TEST_POSTGRES` holds
//! a URL such as `postgres://postgres@127.0.0.1:5432/test`; otherwise the
//! PostgreSQL variant says it was skipped). Each PostgreSQL test gets a fresh
//! schema (`hotline_test_…`, via `search_path`), dropped at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use hotline::store::{
    check_lookup_sql, spawn_spooling_writer, spawn_writer, Backend, CallRecord, Disposition,
    HangupBy, SqlValue, Store, StoreError, DEMO_ACCOUNTS,
};
use sqlx::Connection;

#[macro_use]
#[path = "support/test_db.rs"]
mod test_db;
use test_db::{run, TestDb};
#[path = "support/tcp_proxy.rs"]
mod tcp_proxy;

both_backends!(
    open_creates_and_migrate_twice_is_noop,
    changed_migration_is_reported,
    insert_and_read_back_every_field,
    duplicate_insert_is_one_row,
    lookup_binds_values,
    lookup_value_types,
    lookup_rejects_non_select,
    writer_1000_records_from_20_tasks,
    writer_drains_on_drop_and_close,
    writer_survives_transient_failure,
    writer_ends_if_store_closed_first,
    writer_spools_while_the_database_is_down_and_after_a_restart,
    spooling_writer_keeps_rows_on_disk_if_store_closed_first,
    callbacks_are_upserted_listed_and_their_attempts_kept,
    queue_events_and_agent_states_round_trip,
    voice_messages_between_bounds,
);

// ------------------------------------------------------------------ data --

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn record(call_id: &str) -> CallRecord {
    let arrived = Utc.with_ymd_and_hms(2026, 10, 8, 9, 30, 0).unwrap();
    CallRecord {
        call_id: call_id.to_string(),
        caller: "13800138000".into(),
        dialed: "12333".into(),
        arrived_at: arrived,
        answered_at: Some(arrived + chrono::Duration::milliseconds(1_500)),
        ended_at: arrived + chrono::Duration::milliseconds(61_500),
        duration_ms: 60_000,
        ivr_path: vec!["greeting".into(), "menu".into(), "balance".into()],
        self_service_result: Some("balance_read".into()),
        disposition: Disposition::SelfServed,
        hangup_by: HangupBy::Caller,
        hangup_reason: "bye".into(),
        sip_status: 200,
        codec: Some("PCMA".into()),
        language: Some("zh".into()),
        queue: None,
        voice_message: None,
        voice_message_ms: None,
        acd: Default::default(),
    }
}

/// The migration files shipped for a backend, counted on disk (not from the
/// list the crate embeds, so a file left out of that list fails the test).
fn migration_files(backend: Backend) -> i64 {
    let dir = match backend {
        Backend::Sqlite => "migrations/sqlite",
        Backend::Postgres => "migrations/postgres",
    };
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.into())
}

// ----------------------------------------------------------------- tests --

async fn open_creates_and_migrate_twice_is_noop(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.count_call_records().await.unwrap(), 0);
    store.insert_call_record(&record("a")).await.unwrap();
    // Migrating again, and opening again, changes nothing.
    store.migrate().await.unwrap();
    let again = db.open().await;
    again.migrate().await.unwrap();
    assert_eq!(again.count_call_records().await.unwrap(), 1);
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM _sqlx_migrations").await,
        migration_files(db.backend),
        "each migration file under migrations/ is recorded once"
    );
    again.close().await;
    store.close().await;

    if db.backend == Backend::Sqlite {
        // WAL journal mode persists in the file.
        let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut c)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
        c.close().await.unwrap();
    }
}

async fn changed_migration_is_reported(db: TestDb) {
    db.open().await.close().await;
    db.exec(match db.backend {
        Backend::Sqlite => "UPDATE _sqlx_migrations SET checksum = x'00'",
        Backend::Postgres => "UPDATE _sqlx_migrations SET checksum = decode('00', 'hex')",
    })
    .await;
    let err = Store::open(&db.url).await.unwrap_err();
    assert!(matches!(err, StoreError::Migrate { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("migration failed"), "{msg}");
    assert!(msg.contains('1'), "names the version: {msg}");
}

async fn insert_and_read_back_every_field(db: TestDb) {
    let store = db.open().await;
    let full = CallRecord {
        call_id: "a84b4c76e66710@pc33.example.com".into(),
        caller: "+8613900139000".into(),
        dialed: "12345".into(),
        arrived_at: t("2026-01-31T23:59:58.123456Z"),
        answered_at: Some(t("2026-02-01T00:00:01.000001Z")),
        ended_at: t("2026-02-01T00:05:00.5Z"),
        duration_ms: 299_499,
        ivr_path: vec!["欢迎".into(), "menu \"main\"".into(), "queue".into()],
        self_service_result: Some("pin_failed".into()),
        disposition: Disposition::ToQueue,
        hangup_by: HangupBy::Agent,
        hangup_reason: "bye".into(),
        sip_status: 200,
        codec: Some("PCMU".into()),
        language: Some("en".into()),
        queue: Some("12345-general".into()),
        voice_message: Some("voicemail/2026/10/08/abc.wav".into()),
        voice_message_ms: Some(12_340),
        acd: hotline::store::QueueOutcome {
            agent: Some("1001".into()),
            wait_ms: Some(12_500),
            offers: Some(2),
            talk_ms: Some(185_000),
            hold_ms: Some(20_000),
            wrap_up_ms: Some(30_000),
            transfer_target: Some("1002".into()),
            survey_score: Some(5),
        },
    };
    let bare = CallRecord {
        call_id: "bare".into(),
        caller: "anonymous".into(),
        dialed: "12333".into(),
        arrived_at: t("2026-02-01T08:00:00Z"),
        answered_at: None,
        ended_at: t("2026-02-01T08:00:00.2Z"),
        duration_ms: 0,
        ivr_path: vec![],
        self_service_result: None,
        disposition: Disposition::Rejected,
        hangup_by: HangupBy::System,
        hangup_reason: "acl".into(),
        sip_status: 403,
        codec: None,
        language: None,
        queue: None,
        voice_message: None,
        voice_message_ms: None,
        acd: Default::default(),
    };
    store.insert_call_record(&full).await.unwrap();
    store.insert_call_record(&bare).await.unwrap();
    assert_eq!(
        store.call_record(&full.call_id).await.unwrap(),
        Some(full.clone())
    );
    assert_eq!(store.call_record("bare").await.unwrap(), Some(bare.clone()));
    assert_eq!(store.call_record("nope").await.unwrap(), None);

    // Every disposition and hangup side survives the round trip.
    let mut many = Vec::new();
    for (i, d) in Disposition::ALL.iter().enumerate() {
        let mut r = record(&format!("d{i}"));
        r.disposition = *d;
        r.hangup_by = HangupBy::ALL[i % 3];
        r.arrived_at = t("2026-03-01T00:00:00Z") + chrono::Duration::seconds(i as i64);
        many.push(r);
    }
    store.insert_call_records(&many).await.unwrap();
    for r in &many {
        assert_eq!(
            store.call_record(&r.call_id).await.unwrap().as_ref(),
            Some(r)
        );
    }

    // Newest first, limited.
    let recent = store.recent_call_records(3).await.unwrap();
    let ids: Vec<&str> = recent.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(ids, ["d9", "d8", "d7"]);
    assert_eq!(
        store.recent_call_records(100).await.unwrap().len(),
        2 + Disposition::ALL.len()
    );

    // Nanoseconds are truncated to microseconds.
    let mut fine = record("fine");
    fine.arrived_at = t("2026-05-05T05:05:05.123456789Z");
    store.insert_call_record(&fine).await.unwrap();
    let back = store.call_record("fine").await.unwrap().unwrap();
    assert_eq!(back.arrived_at, t("2026-05-05T05:05:05.123456Z"));
    store.close().await;
}

async fn duplicate_insert_is_one_row(db: TestDb) {
    let store = db.open().await;
    let first = record("dup");
    store.insert_call_record(&first).await.unwrap();
    let mut retry = first.clone();
    retry.hangup_reason = "changed".into();
    store.insert_call_record(&retry).await.unwrap();
    // A batch repeating it (and itself) is fine too.
    store
        .insert_call_records(&[first.clone(), record("other"), record("other")])
        .await
        .unwrap();
    assert_eq!(store.count_call_records().await.unwrap(), 2);
    assert_eq!(store.call_record("dup").await.unwrap(), Some(first));
    store.close().await;
}

async fn callbacks_are_upserted_listed_and_their_attempts_kept(db: TestDb) {
    use hotline::store::{CallbackAttemptRow, CallbackFilter, CallbackRow};
    let store = db.open().await;
    let row = |call: &str, at: &str| CallbackRow {
        call_id: call.into(),
        number: "13800138000".into(),
        queue: "12345".into(),
        priority: 0,
        requested_at: t(at),
        state: "pending".into(),
        attempts: 0,
        next_attempt_at: None,
        last_result: None,
        last_agent: None,
        updated_at: t(at),
    };
    let older = row("a", "2026-11-23T10:00:00.5Z");
    let newer = row("b", "2026-11-23T10:05:00Z");
    store
        .save_callbacks(&[newer.clone(), older.clone()])
        .await
        .unwrap();
    let mut failed = older.clone();
    failed.state = "failed".into();
    failed.attempts = 1;
    failed.next_attempt_at = Some(t("2026-11-23T10:10:00Z"));
    failed.last_result = Some("busy".into());
    failed.last_agent = Some("1001".into());
    // A batch with the same request twice: the later state wins.
    store
        .save_callbacks(&[older.clone(), failed.clone()])
        .await
        .unwrap();
    let all = store.callbacks(CallbackFilter::default()).await.unwrap();
    assert_eq!(
        all,
        vec![failed.clone(), newer.clone()],
        "oldest request first"
    );
    let pending = store
        .callbacks(CallbackFilter {
            state: Some("pending".into()),
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(pending, vec![newer.clone()]);
    assert_eq!(store.open_callbacks().await.unwrap().len(), 2);
    let attempt = CallbackAttemptRow {
        call_id: "a".into(),
        attempt: 1,
        started_at: t("2026-11-23T10:06:00Z"),
        agent: "1001".into(),
        result: "busy".into(),
        talk_ms: None,
    };
    let second = CallbackAttemptRow {
        attempt: 2,
        result: "answered".into(),
        talk_ms: Some(61_000),
        ..attempt.clone()
    };
    // A retried write stores nothing twice.
    store
        .insert_callback_attempts(&[attempt.clone(), second.clone(), attempt.clone()])
        .await
        .unwrap();
    assert_eq!(
        store.callback_attempts("a").await.unwrap(),
        vec![attempt, second]
    );
    assert!(store.callback_attempts("b").await.unwrap().is_empty());
    store.close().await;
}

const BALANCE_SQL: &str = "SELECT name, balance_fen, last_paid_year, last_paid_month \
     FROM si_accounts WHERE id_number = $1 AND pin = $2";

async fn lookup_binds_values(db: TestDb) {
    let store = db.open().await;
    assert_eq!(store.seed_demo().await.unwrap(), DEMO_ACCOUNTS.len());
    assert_eq!(store.seed_demo().await.unwrap(), 0, "seeding is idempotent");
    check_lookup_sql(BALANCE_SQL).unwrap();

    let row = store
        .lookup(BALANCE_SQL, &[text("110101199003071234"), text("123456")])
        .await
        .unwrap()
        .expect("right PIN finds the account");
    let want: BTreeMap<String, SqlValue> = [
        ("name", text("张伟")),
        ("balance_fen", SqlValue::Int(1_234_567)),
        ("last_paid_year", SqlValue::Int(2026)),
        ("last_paid_month", SqlValue::Int(10)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(row, want);

    // The X account (stored canonical, upper-case X).
    let row = store
        .lookup(BALANCE_SQL, &[text("11010119851212002X"), text("654321")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["balance_fen"], SqlValue::Int(100));
    assert_eq!(row["last_paid_month"], SqlValue::Int(9));

    // NULLs come back as Null.
    let row = store
        .lookup(BALANCE_SQL, &[text("440106200101010017"), text("888888")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["balance_fen"], SqlValue::Int(0));
    assert_eq!(row["last_paid_year"], SqlValue::Null);
    assert_eq!(row["name"], SqlValue::Null);

    // Wrong PIN, and injection attempts as values: nothing.
    for (id, pin) in [
        ("110101199003071234", "000000"),
        ("110101199003071234", "' OR '1'='1"),
        ("' OR '1'='1", "' OR '1'='1"),
        ("110101199003071234' --", "x"),
        ("110101199003071234", "123456'; DELETE FROM si_accounts; --"),
    ] {
        let got = store
            .lookup(BALANCE_SQL, &[text(id), text(pin)])
            .await
            .unwrap();
        assert_eq!(got, None, "id {id:?} pin {pin:?}");
    }

    // Placeholders bind by number, not by position in the text.
    let swapped = "SELECT balance_fen FROM si_accounts WHERE pin = $2 AND id_number = $1";
    let row = store
        .lookup(swapped, &[text("11010119851212002X"), text("654321")])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["balance_fen"], SqlValue::Int(100));

    // A NULL value matches nothing.
    let got = store
        .lookup(BALANCE_SQL, &[SqlValue::Null, text("123456")])
        .await
        .unwrap();
    assert_eq!(got, None);

    // Integer values bind as integers.
    let row = store
        .lookup(
            "SELECT COUNT(*) AS n FROM si_accounts WHERE balance_fen >= $1",
            &[SqlValue::Int(100)],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["n"], SqlValue::Int(2));

    // Wrong number of values.
    let err = store
        .lookup(BALANCE_SQL, &[text("110101199003071234")])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::LookupParams {
                expected: 2,
                given: 1
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM si_accounts").await,
        DEMO_ACCOUNTS.len() as i64
    );
    store.close().await;
}

async fn lookup_value_types(db: TestDb) {
    let store = db.open().await;
    store.seed_demo().await.unwrap();
    let row = store
        .lookup(
            "SELECT CAST(balance_fen AS DOUBLE PRECISION) / 100 AS yuan, \
             SUM(balance_fen) AS total, 'x' AS lit, NULL AS empty \
             FROM si_accounts WHERE id_number = $1 GROUP BY balance_fen",
            &[text("110101199003071234")],
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row["yuan"], text("12345.67"));
    assert_eq!(row["total"], SqlValue::Int(1_234_567));
    assert_eq!(row["lit"], text("x"));
    assert_eq!(row["empty"], SqlValue::Null);

    let unsupported = match db.backend {
        Backend::Sqlite => "SELECT x'0102' AS b",
        Backend::Postgres => {
            // Decimals with a fraction come back as exact text.
            let row = store
                .lookup(
                    "SELECT CAST(12345.67 AS NUMERIC(12,2)) AS a, \
                     CAST(-0.5 AS NUMERIC(5,2)) AS b, CAST(1 AS BOOLEAN) AS c",
                    &[],
                )
                .await
                .unwrap()
                .unwrap();
            assert_eq!(row["a"], text("12345.67"));
            assert_eq!(row["b"], text("-0.50"));
            assert_eq!(row["c"], SqlValue::Int(1));
            "SELECT now() AS b"
        }
    };
    let err = store.lookup(unsupported, &[]).await.unwrap_err();
    assert!(matches!(err, StoreError::LookupType { .. }), "{err:?}");
    assert!(err.to_string().contains("\"b\""), "{err}");
    store.close().await;
}

async fn lookup_rejects_non_select(db: TestDb) {
    let store = db.open().await;
    store.seed_demo().await.unwrap();
    for sql in [
        "DELETE FROM si_accounts WHERE id_number = $1",
        "UPDATE si_accounts SET pin = $1",
        "SELECT 1; DELETE FROM si_accounts WHERE id_number = $1",
        "DROP TABLE si_accounts",
    ] {
        let err = check_lookup_sql(sql).unwrap_err();
        assert!(matches!(err, StoreError::LookupSql(_)), "{sql}: {err:?}");
        let err = store
            .lookup(sql, &[text("110101199003071234")])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::LookupSql(_)), "{sql}: {err:?}");
        assert!(err.to_string().starts_with("invalid look-up SQL"), "{err}");
    }
    if db.backend == Backend::Postgres {
        // A SELECT with a side effect is stopped by the read-only transaction.
        let err = store
            .lookup("SELECT nextval('call_records_id_seq') AS n", &[])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("read-only"), "{err}");
    }
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM si_accounts").await,
        DEMO_ACCOUNTS.len() as i64
    );
    store.close().await;
}

async fn writer_1000_records_from_20_tasks(db: TestDb) {
    let store = db.open().await;
    // A small queue, so submitters meet back-pressure.
    let (sink, task) = spawn_writer(store.clone(), 16);
    let mut tasks = Vec::new();
    for t in 0..20 {
        let sink = sink.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                let mut r = record(&format!("call-{t:02}-{i:02}"));
                r.arrived_at += chrono::Duration::milliseconds(t * 1000 + i);
                sink.submit(r).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    tokio::time::timeout(Duration::from_secs(60), sink.flush())
        .await
        .expect("flush in time");
    assert_eq!(store.count_call_records().await.unwrap(), 1000);
    let stored: BTreeSet<String> = store
        .recent_call_records(5000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.call_id)
        .collect();
    let expected: BTreeSet<String> = (0..20)
        .flat_map(|t| (0..50).map(move |i| format!("call-{t:02}-{i:02}")))
        .collect();
    assert_eq!(stored, expected);
    let stats = sink.stats();
    assert_eq!(stats.written, 1000);
    assert_eq!(stats.failed_attempts, 0);
    assert_eq!(stats.abandoned, 0);
    assert!(stats.batches >= 10, "at most 100 per batch: {stats:?}");
    drop(sink);
    task.await.unwrap();
    store.close().await;
}

async fn writer_drains_on_drop_and_close(db: TestDb) {
    let store = db.open().await;
    // Every sink dropped: the task writes what is queued, then ends.
    let (sink, task) = spawn_writer(store.clone(), 500);
    for i in 0..300 {
        sink.submit(record(&format!("drop-{i}"))).await.unwrap();
    }
    drop(sink);
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("writer ends")
        .unwrap();
    assert_eq!(store.count_call_records().await.unwrap(), 300);

    // Explicit close: queued records written, later submits refused.
    let (sink, task) = spawn_writer(store.clone(), 500);
    let other = sink.clone();
    for i in 0..200 {
        sink.submit(record(&format!("close-{i}"))).await.unwrap();
    }
    sink.close().await;
    assert_eq!(store.count_call_records().await.unwrap(), 500);
    let err = other.submit(record("late")).await.unwrap_err();
    assert!(matches!(err, StoreError::WriterClosed), "{err:?}");
    other.flush().await; // returns at once
    task.await.unwrap();
    store.close().await;
}

async fn writer_survives_transient_failure(db: TestDb) {
    let store = db.open().await;
    // The table disappears for a while: every write fails.
    db.exec("ALTER TABLE call_records RENAME TO call_records_away")
        .await;
    let (sink, task) = spawn_writer(store.clone(), 8);
    let submitter = {
        let sink = sink.clone();
        tokio::spawn(async move {
            for i in 0..50 {
                sink.submit(record(&format!("retry-{i}"))).await.unwrap();
            }
        })
    };
    tokio::time::timeout(Duration::from_secs(20), async {
        while sink.stats().failed_attempts < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the writer attempts and fails");
    assert_eq!(sink.stats().written, 0);
    db.exec("ALTER TABLE call_records_away RENAME TO call_records")
        .await;
    submitter.await.unwrap();
    tokio::time::timeout(Duration::from_secs(60), sink.flush())
        .await
        .expect("flush after recovery");
    assert_eq!(store.count_call_records().await.unwrap(), 50);
    for i in [0, 25, 49] {
        assert!(store
            .call_record(&format!("retry-{i}"))
            .await
            .unwrap()
            .is_some());
    }
    assert_eq!(sink.stats().written, 50);
    sink.close().await;
    task.await.unwrap();
    store.close().await;
}

async fn writer_ends_if_store_closed_first(db: TestDb) {
    // Wrong shutdown order must not hang the daemon in endless retries.
    let store = db.open().await;
    let (sink, task) = spawn_writer(store.clone(), 10);
    store.close().await;
    sink.submit(record("orphan")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), sink.close())
        .await
        .expect("writer ends");
    assert_eq!(sink.stats().abandoned, 1);
    task.await.unwrap();
}

/// A database outage a test can start and end: PostgreSQL through a proxy
/// that is cut (every connection dropped, new ones refused); SQLite by
/// another connection holding the write lock (as a backup tool would)
/// longer than the store waits for it.
enum Outage {
    Postgres(tcp_proxy::CutProxy),
    Sqlite(Option<sqlx::SqliteConnection>),
}

impl Outage {
    /// The store's URL, and the outage to start.
    async fn prepare(db: &TestDb) -> (String, Outage) {
        match db.backend {
            Backend::Postgres => {
                let proxy = tcp_proxy::CutProxy::start(tcp_proxy::upstream_of(&db.url)).await;
                (
                    tcp_proxy::through(&db.url, proxy.addr),
                    Outage::Postgres(proxy),
                )
            }
            Backend::Sqlite => (db.url.clone(), Outage::Sqlite(None)),
        }
    }

    async fn start(&mut self, db: &TestDb) {
        match self {
            Outage::Postgres(proxy) => proxy.cut(),
            Outage::Sqlite(lock) => {
                let mut c = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
                sqlx::raw_sql("BEGIN EXCLUSIVE")
                    .execute(&mut c)
                    .await
                    .unwrap();
                *lock = Some(c);
            }
        }
    }

    async fn end(&mut self) {
        match self {
            Outage::Postgres(proxy) => proxy.restore(),
            Outage::Sqlite(lock) => {
                if let Some(mut c) = lock.take() {
                    sqlx::raw_sql("ROLLBACK").execute(&mut c).await.unwrap();
                    c.close().await.unwrap();
                }
            }
        }
    }
}

async fn writer_spools_while_the_database_is_down_and_after_a_restart(db: TestDb) {
    use hotline::store::{EventFilter, QueueEventRow};
    let event = |i: usize| QueueEventRow {
        uid: format!("spool-ev-{i}"),
        // All at one time: the log's order is the order of insertion.
        at: t("2026-11-23T02:00:00Z"),
        kind: "enter".into(),
        queue: Some("12345".into()),
        call_id: Some(format!("during-{i}")),
        agent: None,
        position: Some(i as i64),
        wait_ms: None,
        talk_ms: None,
        reason: None,
    };
    let spool = tempfile::tempdir().unwrap();
    let pending = spool.path().join(hotline::store::spool::PENDING_FILE);
    let (url, mut outage) = Outage::prepare(&db).await;
    let store = Store::open(&url).await.unwrap();
    let (sink, task) = spawn_spooling_writer(store.clone(), 64, spool.path()).unwrap();
    for i in 0..20 {
        sink.submit(record(&format!("before-{i}"))).await.unwrap();
    }
    sink.flush().await;
    assert_eq!(db.scalar("SELECT COUNT(*) FROM call_records").await, 20);

    outage.start(&db).await;
    // Calls go on: what they submit is taken (and made durable on disk)
    // while the database cannot be written.
    tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..100 {
            sink.submit(record(&format!("during-{i}"))).await.unwrap();
            sink.submit_event(event(i)).await.unwrap();
        }
        sink.flush().await;
    })
    .await
    .expect("submitting goes on while the database is down");
    let stats = sink.stats();
    assert!(stats.spooled >= 200, "{stats:?}");
    assert!(stats.spool_pending >= 200, "{stats:?}");
    assert!(std::fs::metadata(&pending).unwrap().len() > 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM call_records").await, 20);

    // The daemon stops while the database is still down: the rows stay on
    // disk.
    tokio::time::timeout(Duration::from_secs(60), sink.close())
        .await
        .expect("close while the database is down");
    task.await.unwrap();
    assert!(std::fs::metadata(&pending).unwrap().len() > 0);
    assert_eq!(db.scalar("SELECT COUNT(*) FROM call_records").await, 20);

    // The database comes back and the daemon starts again: the spool is
    // written first, then what is new.
    outage.end().await;
    let (sink, task) = spawn_spooling_writer(store.clone(), 64, spool.path()).unwrap();
    for i in 0..10 {
        sink.submit(record(&format!("after-{i}"))).await.unwrap();
    }
    sink.flush().await;
    tokio::time::timeout(Duration::from_secs(60), async {
        while db.scalar("SELECT COUNT(*) FROM call_records").await < 130
            || std::fs::metadata(&pending).unwrap().len() > 0
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the spool is written once the database is back");
    assert_eq!(db.scalar("SELECT COUNT(*) FROM call_records").await, 130);
    for id in ["before-0", "during-0", "during-99", "after-9"] {
        assert!(store.call_record(id).await.unwrap().is_some(), "{id}");
    }
    let events = store.queue_events(EventFilter::default()).await.unwrap();
    let expected: Vec<QueueEventRow> = (0..100).map(event).collect();
    assert_eq!(events, expected, "every event once, in the order submitted");
    let stats = sink.stats();
    assert_eq!(stats.abandoned, 0, "{stats:?}");
    sink.close().await;
    task.await.unwrap();
    assert!(!spool
        .path()
        .join(hotline::store::spool::REJECTED_FILE)
        .exists());
    store.close().await;
}

async fn spooling_writer_keeps_rows_on_disk_if_store_closed_first(db: TestDb) {
    // The same wrong shutdown order with a spool: nothing is given up.
    let store = db.open().await;
    let spool = tempfile::tempdir().unwrap();
    let (sink, task) = spawn_spooling_writer(store.clone(), 10, spool.path()).unwrap();
    store.close().await;
    sink.submit(record("orphan")).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), sink.close())
        .await
        .expect("writer ends");
    task.await.unwrap();
    let stats = sink.stats();
    assert_eq!(stats.abandoned, 0, "{stats:?}");
    assert_eq!(stats.spooled, 1, "{stats:?}");
    let pending =
        std::fs::read_to_string(spool.path().join(hotline::store::spool::PENDING_FILE)).unwrap();
    assert!(pending.contains("\"orphan\""), "{pending}");
    // The next start writes it.
    let store = db.open().await;
    let (sink, task) = spawn_spooling_writer(store.clone(), 10, spool.path()).unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while store.call_record("orphan").await.unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("written after the restart");
    sink.close().await;
    task.await.unwrap();
    store.close().await;
}

// ------------------------------------------------------- single backend --

#[tokio::test]
async fn unknown_scheme_is_a_clear_error() {
    for url in ["mysql://root@localhost/db", "hotline.db", ""] {
        let err = Store::open(url).await.unwrap_err();
        assert!(
            matches!(err, StoreError::UnknownScheme { .. }),
            "{url}: {err:?}"
        );
        assert!(err.to_string().contains("sqlite:PATH"), "{err}");
    }
    let err = Store::open("sqlite::memory:").await.unwrap_err();
    assert!(matches!(err, StoreError::BadUrl(_)), "{err:?}");
}

#[tokio::test]
async fn sqlite_directory_that_cannot_be_created_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let url = format!("sqlite:{}/sub/hotline.db", file.display());
    let err = Store::open(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::CreateDir { .. }), "{err:?}");
}

#[tokio::test]
async fn sqlite_url_with_slashes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db/h.db", dir.path().display());
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.backend(), Backend::Sqlite);
    store.close().await;
    assert!(dir.path().join("db/h.db").exists());
}

async fn queue_events_and_agent_states_round_trip(db: TestDb) {
    use hotline::store::{AgentStateRow, EventFilter, QueueEventRow};
    let store = db.open().await;
    let ev = |uid: &str, kind: &str, call: &str, agent: Option<&str>, secs: i64| QueueEventRow {
        uid: uid.into(),
        at: t("2026-11-23T02:00:00.123456Z") + chrono::Duration::seconds(secs),
        kind: kind.into(),
        queue: Some("12345".into()),
        call_id: Some(call.into()),
        agent: agent.map(str::to_string),
        position: Some(2),
        wait_ms: Some(1500),
        talk_ms: None,
        reason: Some("r".into()),
    };
    let events = vec![
        ev("b-1", "enter", "c1", None, 0),
        ev("b-2", "offer", "c1", Some("1001"), 1),
        ev("b-3", "enter", "c2", None, 2),
        ev("b-4", "connect", "c1", Some("1001"), 3),
    ];
    store.insert_queue_events(&events).await.unwrap();
    // A retried batch writes nothing twice.
    store.insert_queue_events(&events[1..3]).await.unwrap();
    let all = store.queue_events(EventFilter::default()).await.unwrap();
    assert_eq!(all, events, "oldest first, every field back");
    let c1 = store
        .queue_events(EventFilter {
            call_id: Some("c1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c1.len(), 3);
    let offers = store
        .queue_events(EventFilter {
            agent: Some("1001".into()),
            kind: Some("offer".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(offers, [events[1].clone()]);
    let last2 = store
        .queue_events(EventFilter {
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(last2, events[2..]);

    let st = |agent: &str, state: &str, reason: Option<&str>| AgentStateRow {
        agent: agent.into(),
        state: state.into(),
        reason: reason.map(str::to_string),
        updated_at: t("2026-11-23T02:00:00Z"),
    };
    store
        .save_agent_states(&[
            st("1001", "ready", None),
            st("1002", "paused", Some("lunch")),
        ])
        .await
        .unwrap();
    store
        .save_agent_states(&[st("1001", "logged_out", None)])
        .await
        .unwrap();
    assert_eq!(
        store.load_agent_states().await.unwrap(),
        [
            st("1001", "logged_out", None),
            st("1002", "paused", Some("lunch"))
        ]
    );

    // The wrap-up time lands on a stored record only.
    store.insert_call_record(&record("w")).await.unwrap();
    assert_eq!(store.set_wrap_up("w", 30_000).await.unwrap(), 1);
    assert_eq!(store.set_wrap_up("nope", 30_000).await.unwrap(), 0);
    let w = store.call_record("w").await.unwrap().unwrap();
    assert_eq!(w.acd.wrap_up_ms, Some(30_000));
    store.close().await;
}

async fn voice_messages_between_bounds(db: TestDb) {
    let store = db.open().await;
    let base = t("2026-11-23T14:00:00Z");
    let mut recs = Vec::new();
    for i in 0..6i64 {
        let mut r = record(&format!("vm-{i}"));
        r.arrived_at = base + chrono::Duration::minutes(10 * i);
        r.ended_at = r.arrived_at + chrono::Duration::seconds(30);
        // Every other call left a message.
        if i % 2 == 0 {
            r.disposition = Disposition::VoiceMessage;
            r.voice_message = Some(format!("voicemail/2026/11/23/vm-{i}.wav"));
            r.voice_message_ms = Some(3000 + i);
        }
        recs.push(r);
    }
    store.insert_call_records(&recs).await.unwrap();
    let ids = |rows: Vec<CallRecord>| rows.into_iter().map(|r| r.call_id).collect::<Vec<_>>();
    let all = store.voice_message_records(None, None, 100).await.unwrap();
    assert_eq!(ids(all.clone()), ["vm-4", "vm-2", "vm-0"], "newest first");
    assert_eq!(all[0].voice_message_ms, Some(3004));
    assert_eq!(all[0].arrived_at, t("2026-11-23T14:40:00Z"));
    // from is inclusive, to exclusive; bounds in any offset.
    let some = store
        .voice_message_records(
            Some(t("2026-11-23T22:20:00+08:00")),
            Some(t("2026-11-23T14:40:00Z")),
            100,
        )
        .await
        .unwrap();
    assert_eq!(ids(some), ["vm-2"]);
    let since = store
        .voice_message_records(Some(t("2026-11-23T14:00:00Z")), None, 100)
        .await
        .unwrap();
    assert_eq!(ids(since), ["vm-4", "vm-2", "vm-0"]);
    let until = store
        .voice_message_records(None, Some(t("2026-11-23T14:00:00.000001Z")), 100)
        .await
        .unwrap();
    assert_eq!(ids(until), ["vm-0"]);
    let limited = store.voice_message_records(None, None, 2).await.unwrap();
    assert_eq!(ids(limited), ["vm-4", "vm-2"]);
    store.close().await;
}

// ---------------------------------------------------------------------------
// Recordings, their marks, the audit log, and the retention run.
// ---------------------------------------------------------------------------

both_backends!(recordings_round_trip_and_retention);

fn recording_row(id: &str, started: DateTime<Utc>, path: &str) -> hotline::store::RecordingRow {
    hotline::store::RecordingRow {
        id: id.into(),
        call_id: format!("call-{id}"),
        kind: hotline::store::RecordingKind::Call,
        segment: 0,
        agent: Some("1001".into()),
        queue: Some("12345".into()),
        caller: Some("13800138000".into()),
        dialed: Some("12345".into()),
        path: path.into(),
        channels: 2,
        started_at: started,
        ended_at: Some(started + chrono::Duration::seconds(90)),
        duration_ms: Some(90_000),
        size_bytes: Some(1_440_044),
        sha256: Some("ab".repeat(32)),
        masked_ms: 0,
        status: hotline::store::RecordingStatus::Complete,
        deleted_at: None,
    }
}

async fn recordings_round_trip_and_retention(db: TestDb) {
    use hotline::store::{AuditFilter, RecordingFilter, RecordingMarkRow, RecordingStatus};
    let store = db.open().await;
    let data = tempfile::tempdir().unwrap();
    let now = Utc.with_ymd_and_hms(2026, 12, 2, 3, 0, 0).unwrap();
    let old = now - chrono::Duration::days(200);
    let fresh = now - chrono::Duration::days(10);
    let mut rows = vec![
        recording_row("old", old, "recordings/2026/05/16/old.wav"),
        recording_row("fresh", fresh, "recordings/2026/11/22/fresh.wav"),
        // A tampered path: never deleted, whatever its age.
        recording_row("evil", old, "recordings/../hotline.db"),
    ];
    // Started, then finished: the last state wins.
    let mut started = recording_row("live", old, "recordings/2026/05/16/live.wav");
    started.status = RecordingStatus::Recording;
    started.ended_at = None;
    started.duration_ms = None;
    store.save_recordings(&[started]).await.unwrap();
    rows.push(recording_row("live", old, "recordings/2026/05/16/live.wav"));
    store.save_recordings(&rows).await.unwrap();
    for r in &rows[..2] {
        let p = data.path().join(&r.path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"RIFF").unwrap();
    }
    std::fs::write(data.path().join("hotline.db"), b"keep me").unwrap();
    let back = store.recording("live").await.unwrap().unwrap();
    assert_eq!(back, rows[3]);
    assert!(store.recording("nope").await.unwrap().is_none());
    let by_agent = store
        .recordings(RecordingFilter {
            agent: Some("1001".into()),
            from: Some(now - chrono::Duration::days(30)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        by_agent.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["fresh"]
    );

    let mark = |uid: &str, at_ms, kind: &str| RecordingMarkRow {
        uid: uid.into(),
        recording_id: "fresh".into(),
        at_ms,
        kind: kind.into(),
        detail: Some("agent".into()),
    };
    let marks = [mark("m2", 9000, "resume"), mark("m1", 3000, "hold")];
    store.insert_recording_marks(&marks).await.unwrap();
    store.insert_recording_marks(&marks).await.unwrap(); // a retry: no duplicates
    let back = store.recording_marks("fresh").await.unwrap();
    assert_eq!(
        back.iter()
            .map(|m| (m.at_ms, m.kind.as_str()))
            .collect::<Vec<_>>(),
        [(3000, "hold"), (9000, "resume")]
    );

    let (sink, writer) = spawn_writer(store.clone(), 100);
    let n = hotline::recording::maintenance::delete_expired(&store, &sink, data.path(), 180, now)
        .await
        .unwrap();
    assert_eq!(n, 2, "old and live (the tampered one is refused)");
    assert!(!data.path().join("recordings/2026/05/16/old.wav").exists());
    assert!(data.path().join("recordings/2026/11/22/fresh.wav").exists());
    assert!(data.path().join("hotline.db").exists());
    let old_row = store.recording("old").await.unwrap().unwrap();
    assert_eq!(old_row.status, RecordingStatus::Deleted);
    assert_eq!(old_row.deleted_at, Some(now));
    assert_eq!(
        store.recording("evil").await.unwrap().unwrap().status,
        RecordingStatus::Complete
    );
    let audit = store
        .audit_log(AuditFilter {
            action: Some("delete_recording".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut objects: Vec<_> = audit.iter().map(|a| a.object.clone().unwrap()).collect();
    objects.sort();
    assert_eq!(objects, ["recording:live", "recording:old"]);
    assert!(audit.iter().all(|a| a.actor == "system" && a.at == now));
    // Run again: nothing more to delete.
    let n = hotline::recording::maintenance::delete_expired(&store, &sink, data.path(), 180, now)
        .await
        .unwrap();
    assert_eq!(n, 0);
    sink.close().await;
    writer.await.unwrap();
    store.close().await;
}

// ---------------------------------------------------------------------------
// QC users and sessions; scores, disputes and the worklist.
// ---------------------------------------------------------------------------

both_backends!(
    users_and_sessions_round_trip,
    scores_disputes_and_the_worklist,
    two_daemons_store_one_scheduled_sample_of_a_day
);

/// Two daemons on one database sample the same day at the same time: one
/// scheduled run is stored, the other saves nothing (and says so); a run
/// by hand of the same period is still stored.
async fn two_daemons_store_one_scheduled_sample_of_a_day(db: TestDb) {
    use hotline::store::{AuditRow, SamplePick, SampleRunFilter, SampleRunRow, SampleSource};
    let (first, second) = (db.open().await, db.open().await);
    let day = t("2026-12-01T16:00:00Z");
    let run = |id: &str, source| SampleRunRow {
        id: id.into(),
        period_from: day,
        period_to: day + chrono::Duration::days(1),
        seed: 1,
        source,
        rules: "{}".into(),
        picked: 1,
        created_at: day,
    };
    let picks = [SamplePick {
        recording_id: "r1".into(),
        rule: "random".into(),
        detail: String::new(),
    }];
    let audit = |id: &str| AuditRow::now("system", "qc.sample", Some(id.into()), None);
    for round in 0..5 {
        let (a, b) = (
            run(&format!("a{round}"), SampleSource::Scheduled),
            run(&format!("b{round}"), SampleSource::Scheduled),
        );
        let (audit_a, audit_b) = (audit("a"), audit("b"));
        let (ra, rb) = tokio::join!(
            first.save_sample_run(&a, &picks, &audit_a),
            second.save_sample_run(&b, &picks, &audit_b),
        );
        let saved = [ra.unwrap(), rb.unwrap()];
        let want = if round == 0 { 1 } else { 0 };
        assert_eq!(
            saved.iter().filter(|s| **s).count(),
            want,
            "round {round}: {saved:?}"
        );
    }
    assert!(first
        .save_sample_run(&run("by-hand", SampleSource::Cli), &picks, &audit("c"))
        .await
        .unwrap());
    let filter = |source| SampleRunFilter {
        period: Some((day, day + chrono::Duration::days(1))),
        source: Some(source),
        limit: 10,
    };
    let scheduled = first
        .sample_runs(filter(SampleSource::Scheduled))
        .await
        .unwrap();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    assert_eq!(
        first
            .sample_runs(filter(SampleSource::Cli))
            .await
            .unwrap()
            .len(),
        1
    );
    // Nothing else was kept of the runs that lost.
    let every = first
        .sample_runs(SampleRunFilter {
            period: None,
            source: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(every.len(), 2, "{every:?}");
    first.close().await;
    second.close().await;
}

async fn users_and_sessions_round_trip(db: TestDb) {
    use hotline::store::{SessionRow, UserRow};
    let store = db.open().await;
    let now = t("2026-12-03T02:00:00.123456Z");
    let mut u = UserRow {
        name: "li".into(),
        role: "team_lead".into(),
        team: Some("A".into()),
        extension: Some("2001".into()),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$x$y".into(),
        disabled: false,
        failed_logins: 0,
        locked_until: None,
        created_at: now,
        updated_at: now,
    };
    assert!(store.add_user(&u).await.unwrap());
    assert!(
        !store.add_user(&u).await.unwrap(),
        "a taken name adds nothing"
    );
    assert_eq!(store.user("li").await.unwrap().as_ref(), Some(&u));
    u.failed_logins = 3;
    u.locked_until = Some(now + chrono::Duration::minutes(15));
    u.disabled = true;
    assert!(store.update_user(&u).await.unwrap());
    assert_eq!(store.users().await.unwrap(), vec![u.clone()]);
    assert!(store.user("nobody").await.unwrap().is_none());

    let s = SessionRow {
        token_hash: "h1".into(),
        user_name: "li".into(),
        csrf: "c1".into(),
        created_at: now,
        last_seen: now,
        expires_at: now + chrono::Duration::minutes(30),
    };
    store.create_session(&s).await.unwrap();
    store
        .create_session(&SessionRow {
            token_hash: "h2".into(),
            ..s.clone()
        })
        .await
        .unwrap();
    assert_eq!(store.session("h1", now).await.unwrap(), Some(s.clone()));
    assert_eq!(
        store
            .session("h1", now + chrono::Duration::minutes(31))
            .await
            .unwrap(),
        None,
        "expired"
    );
    let later = now + chrono::Duration::minutes(20);
    store
        .touch_session("h1", later, later + chrono::Duration::minutes(30))
        .await
        .unwrap();
    assert!(store
        .session("h1", now + chrono::Duration::minutes(45))
        .await
        .unwrap()
        .is_some());
    assert_eq!(store.end_sessions(Some("h1"), None, now).await.unwrap(), 1);
    assert_eq!(store.end_sessions(None, Some("li"), now).await.unwrap(), 1);
    assert!(store.session("h2", now).await.unwrap().is_none());
    store.close().await;
}

async fn scores_disputes_and_the_worklist(db: TestDb) {
    use hotline::store::{
        AuditRow, DisputeRow, SamplePick, SampleRunRow, SampleSource, ScoreCommentRow, ScoreFilter,
        ScoreItemRow, ScoreRow, ScoreStatus, WorklistFilter,
    };
    let store = db.open().await;
    let day = t("2026-12-01T01:00:00Z");
    let a = recording_row("ra", day, "recordings/2026/12/01/a.wav");
    let mut b = recording_row("rb", day + chrono::Duration::hours(1), "recordings/b.wav");
    b.agent = Some("1002".into());
    store.save_recordings(&[a, b]).await.unwrap();
    let run = SampleRunRow {
        id: "run1".into(),
        period_from: day,
        period_to: day + chrono::Duration::days(1),
        seed: 7,
        source: SampleSource::Cli,
        rules: "{}".into(),
        picked: 3,
        created_at: day,
    };
    let pick = |r: &str, rule: &str| SamplePick {
        recording_id: r.into(),
        rule: rule.into(),
        detail: format!("{rule} detail"),
    };
    store
        .save_sample_run(
            &run,
            &[
                pick("ra", "random"),
                pick("ra", "longest"),
                pick("rb", "random"),
            ],
            &AuditRow::now("cli", "qc.sample", Some("run:run1".into()), None),
        )
        .await
        .unwrap();
    let all = store.worklist(WorklistFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].recording_id, "rb", "newest first");
    assert_eq!(all[1].picks.len(), 2);
    let longest = store
        .worklist(WorklistFilter {
            rule: Some("longest".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(longest.len(), 1);
    assert_eq!(
        longest[0].picks.len(),
        2,
        "every rule of a listed recording"
    );
    let of_1002 = store
        .worklist(WorklistFilter {
            agent: Some("1002".into()),
            from: Some(day + chrono::Duration::minutes(30)),
            to: Some(day + chrono::Duration::days(1)),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(of_1002.len(), 1);

    let now = t("2026-12-03T02:00:00Z");
    let score = ScoreRow {
        id: "s1".into(),
        recording_id: "ra".into(),
        scorecard: "hotline".into(),
        scorecard_version: 3,
        scorer: "wang".into(),
        agent: Some("1001".into()),
        queue: Some("12345".into()),
        team: Some("A".into()),
        total: 75.0,
        auto_failed: false,
        status: ScoreStatus::Open,
        final_total: None,
        dispute_until: Some(now + chrono::Duration::days(2)),
        created_at: now,
        items: vec![
            ScoreItemRow {
                section: "Opening".into(),
                item: "greeting".into(),
                answer: "no".into(),
                weight: 10.0,
                points: 0.0,
                auto_fail: false,
            },
            ScoreItemRow {
                section: "Conduct".into(),
                item: "courtesy".into(),
                answer: "yes".into(),
                weight: 30.0,
                points: 30.0,
                auto_fail: false,
            },
        ],
        comments: vec![
            ScoreCommentRow {
                at_ms: Some(83_000),
                text: "no greeting".into(),
            },
            ScoreCommentRow {
                at_ms: None,
                text: "otherwise fine".into(),
            },
        ],
        dispute: None,
    };
    store.save_score(&score).await.unwrap();
    let mut second = score.clone();
    second.id = "s2".into();
    second.dispute_until = Some(now - chrono::Duration::seconds(1));
    second.items.clear();
    second.comments.clear();
    store.save_score(&second).await.unwrap();
    let read = store
        .scores(ScoreFilter {
            id: Some("s1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(read, vec![score.clone()]);
    let scored = store
        .worklist(WorklistFilter {
            scored: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(scored.len(), 1);
    assert_eq!(
        (scored[0].recording_id.as_str(), scored[0].scores),
        ("ra", 2)
    );
    let unscored = store
        .worklist(WorklistFilter {
            scored: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(unscored[0].recording_id, "rb");

    // The window of s2 closed: final, and it cannot be disputed.
    assert_eq!(store.finalize_scores(now).await.unwrap(), 1);
    let dispute = |score: &str| DisputeRow {
        id: format!("d-{score}"),
        score_id: score.into(),
        raised_by: "li".into(),
        reason: "greeting given".into(),
        raised_at: now,
        settled_by: None,
        settled_at: None,
        outcome: None,
        revised_total: None,
        note: None,
    };
    assert!(!store.raise_dispute(&dispute("s2")).await.unwrap());
    assert!(store.raise_dispute(&dispute("s1")).await.unwrap());
    assert!(!store.raise_dispute(&dispute("s1")).await.unwrap(), "once");
    assert!(!store
        .settle_dispute("s2", "zhao", now, None, "")
        .await
        .unwrap());
    assert!(store
        .settle_dispute("s1", "zhao", now, Some(85.0), "heard it")
        .await
        .unwrap());
    let s1 = store
        .scores(ScoreFilter {
            recording_id: Some("ra".into()),
            from: Some(now),
            to: Some(now + chrono::Duration::seconds(1)),
            agent: Some("1001".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(s1.len(), 2);
    assert_eq!(s1[0].status, ScoreStatus::Final);
    assert_eq!(s1[0].final_total, Some(85.0));
    assert_eq!(s1[0].effective_total(), 85.0);
    let d = s1[0].dispute.as_ref().unwrap();
    assert_eq!(d.outcome.as_deref(), Some("revised"));
    assert_eq!(d.settled_by.as_deref(), Some("zhao"));
    assert_eq!(
        s1[1].final_total,
        Some(75.0),
        "finalized with its own total"
    );
    store.close().await;
}

//! DEMO DATA: made-up 12333 social-insurance accounts in `si_accounts`, so
//! the self-service balance menu works out of the box and in tests. This table
//! stands in for the social-insurance back end; a real center points the IVR
//! look-up SQL at its own view and never seeds.
//!
//! ID numbers are stored in canonical form: a final check character X is an
//! upper-case `X`. Callers key it as `*` on the phone; the IVR maps `*`→`X`
//! before the look-up.

use super::{Db, Store, StoreError};

/// One demo account (all values invented).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoAccount {
    pub id_number: &'static str,
    pub pin: &'static str,
    pub name: Option<&'static str>,
    /// Personal-account balance in fen (1/100 元).
    pub balance_fen: i64,
    /// Year and month of the last contribution paid, if any.
    pub last_paid: Option<(i32, i32)>,
}

/// The accounts [`Store::seed_demo`] inserts.
pub const DEMO_ACCOUNTS: &[DemoAccount] = &[
    // 12,345.67 元, paid up to October 2026.
    DemoAccount {
        id_number: "110101199003071234",
        pin: "123456",
        name: Some("张伟"),
        balance_fen: 1_234_567,
        last_paid: Some((2026, 10)),
    },
    // ID ending in X (keyed as `*`): 1.00 元, paid up to September 2026.
    DemoAccount {
        id_number: "11010119851212002X",
        pin: "654321",
        name: Some("李娜"),
        balance_fen: 100,
        last_paid: Some((2026, 9)),
    },
    // Zero balance, last paid December 2025.
    DemoAccount {
        id_number: "310104196507150048",
        pin: "111111",
        name: Some("王芳"),
        balance_fen: 0,
        last_paid: Some((2025, 12)),
    },
    // Zero balance and no contribution on record (the "no payment" prompt).
    DemoAccount {
        id_number: "440106200101010017",
        pin: "888888",
        name: None,
        balance_fen: 0,
        last_paid: None,
    },
];

const INSERT: &str = "INSERT INTO si_accounts \
     (id_number, pin, name, balance_fen, last_paid_year, last_paid_month) \
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id_number) DO NOTHING";

macro_rules! bind_account {
    ($query:expr, $a:expr) => {{
        let a: &DemoAccount = $a;
        $query
            .bind(a.id_number)
            .bind(a.pin)
            .bind(a.name)
            .bind(a.balance_fen)
            .bind(a.last_paid.map(|(y, _)| y))
            .bind(a.last_paid.map(|(_, m)| m))
    }};
}

impl Store {
    /// Inserts the [`DEMO_ACCOUNTS`] that are not there yet (accounts already
    /// present are left untouched) and returns how many were inserted: the
    /// number of demo accounts on a fresh database, 0 when run again.
    pub async fn seed_demo(&self) -> Result<usize, StoreError> {
        let this = self.clone();
        super::off_runtime(async move { this.seed_demo_now().await }).await
    }

    async fn seed_demo_now(&self) -> Result<usize, StoreError> {
        let err = StoreError::query("seeding demo accounts");
        let mut inserted = 0u64;
        match &self.db {
            Db::Sqlite { pool, .. } => {
                let mut tx = pool.begin().await.map_err(err)?;
                for a in DEMO_ACCOUNTS {
                    inserted += bind_account!(sqlx::query(INSERT), a)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("seeding demo accounts"))?
                        .rows_affected();
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("seeding demo accounts"))?;
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await.map_err(err)?;
                for a in DEMO_ACCOUNTS {
                    inserted += bind_account!(sqlx::query(INSERT), a)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("seeding demo accounts"))?
                        .rows_affected();
                }
                tx.commit()
                    .await
                    .map_err(StoreError::query("seeding demo accounts"))?;
            }
        }
        if inserted > 0 {
            tracing::info!(inserted, "seeded DEMO social-insurance accounts");
        }
        Ok(inserted as usize)
    }
}

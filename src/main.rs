//! `hotline`: the command line. Parses arguments, loads and validates the
//! config, starts tracing, and runs a subcommand; `serve` runs until SIGTERM
//! or Ctrl-C, then drains calls and flushes records before exiting.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use hotline::config::{Config, LogFormat, Overrides};
use hotline::server::{load_media_and_flows, Server};
use hotline::store::Store;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "hotline",
    version,
    about = "Telephony daemon for public-service hotlines"
)]
struct Cli {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes.
#[derive(Args)]
struct Common {
    /// The config file.
    #[arg(long, global = true, default_value = "config/hotline.toml")]
    config: PathBuf,
    /// Database URL (sqlite:PATH or postgres://USER@HOST:PORT/DB); overrides the config.
    #[arg(long, global = true)]
    database: Option<String>,
    /// Folder for the database, recordings and spool files; overrides the config.
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve {
        /// SIP listen address, e.g. 0.0.0.0:5060.
        #[arg(long)]
        sip_listen: Option<String>,
        /// HTTP listen address, e.g. 127.0.0.1:8080.
        #[arg(long)]
        http_listen: Option<String>,
        /// RTP port range, e.g. 20000-29999.
        #[arg(long)]
        rtp_ports: Option<String>,
        /// How long calls may go on after SIGTERM before they are ended.
        #[arg(long, default_value = "30")]
        drain_secs: u64,
    },
    /// Check the config, flows and prompts; print every error with its file and key.
    CheckConfig,
    /// Create the 12333 demo accounts (demo data only).
    SeedDemo,
    /// Print the digest hashes of USER's password (read from standard input)
    /// for a `[[registrar.users]]` entry, in the configured realm.
    Ha1 {
        /// The extension, e.g. 1001.
        user: String,
    },
    /// Users of the QC pages.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Quality control.
    Qc {
        #[command(subcommand)]
        action: QcAction,
    },
    /// The center's KPIs (answer rate, service level, ASA, abandons, AHT,
    /// ACW, occupancy, satisfaction, FCR) of the local days FROM to TO,
    /// both included: total, per queue, agent, hour and day.
    Report {
        /// First day, YYYY-MM-DD (the center's time zone).
        #[arg(long)]
        from: String,
        /// Last day, YYYY-MM-DD, included: one day is --from D --to D.
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
        /// Only the calls of this queue.
        #[arg(long)]
        queue: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Subcommand)]
enum UserAction {
    /// Add a user; the password (at least 10 characters) is read from standard input.
    Add {
        name: String,
        /// qc, team_lead, supervisor or admin.
        #[arg(long)]
        role: String,
        /// The team a team lead leads (the agents' `team`).
        #[arg(long)]
        team: Option<String>,
        /// The user's softphone extension, for live monitoring.
        #[arg(long)]
        extension: Option<String>,
    },
    /// Set a user's password (read from standard input); ends the user's sessions.
    Passwd { name: String },
    /// Stop a user from logging in; ends the user's sessions.
    Disable { name: String },
    /// Let a disabled user log in again.
    Enable { name: String },
    /// List the users.
    List,
}

#[derive(Subcommand)]
enum QcAction {
    /// The QC report of a period: scores given from FROM to TO (local dates, both included).
    Report {
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// Print CSV instead of a table.
        #[arg(long)]
        csv: bool,
    },
    /// Pick recordings for QC by the [qc.sampling] rules, over the period
    /// FROM ≤ start < TO (local time in qc.sampling.timezone), and store the
    /// picks as a sampling run (audited). The same seed over the same
    /// records picks the same recordings.
    Sample {
        /// Start of the period: YYYY-MM-DD or YYYY-MM-DDTHH:MM (local).
        #[arg(long)]
        from: String,
        /// End of the period, exclusive: one day is --from 2026-10-08 --to 2026-10-09.
        #[arg(long)]
        to: String,
        /// The seed (default: the configured one, or one derived from the period).
        #[arg(long, value_parser = clap::value_parser!(u64).range(0..=i64::MAX as u64))]
        seed: Option<u64>,
        /// Show the picks without storing anything.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut overrides = Overrides {
        database: cli.common.database.clone(),
        data_dir: cli.common.data_dir.clone(),
        ..Default::default()
    };
    if let Command::Serve {
        sip_listen,
        http_listen,
        rtp_ports,
        ..
    } = &cli.command
    {
        overrides.sip_listen = sip_listen.clone();
        overrides.http_listen = http_listen.clone();
        overrides.rtp_ports = rtp_ports.clone();
    }
    let cfg = match Config::load(&cli.common.config, &overrides) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("hotline: {} error(s) in the configuration", errors.0.len());
            return ExitCode::from(2);
        }
    };
    // `report` prints CSV and JSON for other programs: its log goes to
    // standard error.
    init_tracing(&cfg, matches!(cli.command, Command::Report { .. }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hotline: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve { drain_secs, .. } => {
                let reload = Reload {
                    path: cli.common.config.clone(),
                    overrides: overrides.clone(),
                };
                serve(cfg, Duration::from_secs(drain_secs), reload).await
            }
            Command::CheckConfig => {
                if let Err(e) = check_config(&cfg) {
                    // Flows and prompts are configuration too: same exit code.
                    eprintln!("{e}");
                    eprintln!("hotline: the configuration has errors");
                    return Err(anyhow::anyhow!("CONFIG"));
                }
                Ok(())
            }
            Command::SeedDemo => seed_demo(&cfg).await,
            Command::Ha1 { user } => print_ha1(&cfg, &user),
            Command::User { action } => user_command(&cfg, action).await,
            Command::Qc { action } => qc_command(&cfg, action).await,
            Command::Report {
                from,
                to,
                format,
                queue,
            } => kpi_report(&cfg, &from, &to, format, queue.as_deref()).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.to_string() == "CONFIG" => ExitCode::from(2),
        Err(e) => {
            eprintln!("hotline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(cfg: &Config, to_stderr: bool) {
    // As EnvFilter::try_from_env("HOTLINE_LOG"), falling back to
    // EnvFilter::new(&cfg.log_filter), but without regexes (see
    // `log_filter_builder`).
    let filter = std::env::var("HOTLINE_LOG")
        .ok()
        .and_then(|v| hotline::config::log_filter_builder().parse(v).ok())
        .unwrap_or_else(|| {
            hotline::config::log_filter_builder()
                .with_default_directive(tracing_subscriber::filter::LevelFilter::ERROR.into())
                .parse_lossy(&cfg.log_filter)
        });
    // Colours only for a person at a terminal: the journal, `docker logs`
    // and log files get plain lines (and NO_COLOR is honoured).
    use std::io::IsTerminal;
    let terminal = if to_stderr {
        std::io::stderr().is_terminal()
    } else {
        std::io::stdout().is_terminal()
    };
    let ansi = terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi);
    match (cfg.log_format, to_stderr) {
        (LogFormat::Json, false) => builder.json().init(),
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Json, true) => builder.json().with_writer(std::io::stderr).init(),
        (LogFormat::Text, true) => builder.with_writer(std::io::stderr).init(),
    }
}

/// Where SIGHUP reads the configuration again: the same file and
/// command-line overrides as at start.
struct Reload {
    path: std::path::PathBuf,
    overrides: Overrides,
}

impl Reload {
    async fn apply(&self, server: &Server) {
        tracing::info!(file = %self.path.display(), "SIGHUP: reloading the configuration");
        let result = match Config::load(&self.path, &self.overrides) {
            Ok(cfg) => server.reload(&cfg).await.map_err(|e| e.to_string()),
            Err(errors) => Err(errors.to_string()),
        };
        if let Err(error) = result {
            tracing::error!(%error, "reload refused: the running configuration is kept");
        }
    }
}

async fn serve(cfg: Config, drain: Duration, reload: Reload) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("cannot create the data folder {}", cfg.data_dir.display()))?;
    // The handlers are in place before anything listens: a SIGTERM that
    // comes as soon as the daemon answers still drains it.
    let signal = stop_signal();
    #[cfg(unix)]
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let server = Server::start(cfg).await?;
    tokio::pin!(signal);
    loop {
        #[cfg(unix)]
        tokio::select! {
            _ = &mut signal => break,
            _ = hup.recv() => reload.apply(&server).await,
        }
        #[cfg(not(unix))]
        {
            let _ = &reload;
            (&mut signal).await;
            break;
        }
    }
    server.shutdown(drain).await;
    Ok(())
}

/// Registers SIGTERM and Ctrl-C now; the future resolves on either.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        if let Some(mut term) = term {
            tokio::select! {
                _ = term.recv() => {}
                _ = ctrl_c => {}
            }
            return;
        }
        let _ = ctrl_c.await;
    }
}

fn check_config(cfg: &Config) -> anyhow::Result<()> {
    let (prompts, flows) = load_media_and_flows(cfg)?;
    for w in &cfg.warnings {
        println!("{}: warning: {w}", cfg.file.display());
    }
    println!(
        "{}: ok ({} prompts, {} flows)",
        cfg.file.display(),
        prompts.len(),
        flows.len()
    );
    Ok(())
}

/// The first line of standard input, without its line end.
fn read_password() -> anyhow::Result<String> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password)?;
    let password = password.trim_end_matches(['\r', '\n']).to_string();
    anyhow::ensure!(!password.is_empty(), "no password on standard input");
    Ok(password)
}

async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&cfg.data_dir).ok();
    Ok(Store::open(&cfg.database_url).await?)
}

async fn user_command(cfg: &Config, action: UserAction) -> anyhow::Result<()> {
    use hotline::web::users_admin;
    let store = open_store(cfg).await?;
    let result = match action {
        UserAction::Add {
            name,
            role,
            team,
            extension,
        } => {
            let pw = read_password()?;
            users_admin::add(&store, &name, &role, team, extension, &pw)
                .await
                .map(|u| println!("user {} added (role {})", u.name, u.role))
        }
        UserAction::Passwd { name } => {
            let pw = read_password()?;
            users_admin::set_password(&store, &name, &pw)
                .await
                .map(|u| println!("password of {} changed; its sessions ended", u.name))
        }
        UserAction::Disable { name } => users_admin::set_disabled(&store, &name, true)
            .await
            .map(|u| println!("user {} disabled", u.name)),
        UserAction::Enable { name } => users_admin::set_disabled(&store, &name, false)
            .await
            .map(|u| println!("user {} enabled", u.name)),
        UserAction::List => {
            println!(
                "{:<16} {:<11} {:<10} {:<10} state",
                "name", "role", "team", "extension"
            );
            for u in store.users().await? {
                let state = if u.disabled {
                    "disabled".to_string()
                } else if let Some(t) = u.locked_until.filter(|t| *t > chrono::Utc::now()) {
                    format!("locked until {t}")
                } else {
                    "active".to_string()
                };
                println!(
                    "{:<16} {:<11} {:<10} {:<10} {state}",
                    u.name,
                    u.role,
                    u.team.as_deref().unwrap_or("-"),
                    u.extension.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
    };
    store.close().await;
    Ok(result?)
}

async fn qc_command(cfg: &Config, action: QcAction) -> anyhow::Result<()> {
    match action {
        QcAction::Sample {
            from,
            to,
            seed,
            dry_run,
        } => qc_sample(cfg, &from, &to, seed, dry_run).await,
        QcAction::Report { from, to, csv } => {
            let tz = cfg.qc.tz();
            let day = |what: &str, s: &str| {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                    .with_context(|| format!("--{what} {s:?} is not a date (YYYY-MM-DD)"))
            };
            let (f, t) = (day("from", &from)?, day("to", &to)?);
            anyhow::ensure!(f <= t, "--from must be on or before --to");
            let (from, _) = hotline::qc::sample_run::day_period(tz, f);
            let (_, to) = hotline::qc::sample_run::day_period(tz, t);
            let store = open_store(cfg).await?;
            let scores = store.scores_given(from, to, chrono::Utc::now()).await?;
            store.close().await;
            let report = hotline::qc::report::build(&scores, from, to, &cfg.qc);
            if csv {
                print!("{}", report.csv());
            } else {
                print!("{}", report.text(tz));
            }
            Ok(())
        }
    }
}

async fn kpi_report(
    cfg: &Config,
    from: &str,
    to: &str,
    format: ReportFormat,
    queue: Option<&str>,
) -> anyhow::Result<()> {
    let settings = cfg.report.settings(cfg.qc.tz());
    let (from, to) =
        hotline::kpi::day_period(from, to, settings.tz, "--").map_err(anyhow::Error::msg)?;
    let store = open_store(cfg).await?;
    let kpis = hotline::kpi::load(&store, &settings, from, to, chrono::Utc::now(), queue).await;
    store.close().await;
    let kpis = kpis?;
    match format {
        ReportFormat::Table => print!("{}", kpis.text()),
        ReportFormat::Csv => print!("{}", kpis.csv()),
        ReportFormat::Json => println!("{:#}", kpis.json()),
    }
    Ok(())
}

fn print_ha1(cfg: &Config, user: &str) -> anyhow::Result<()> {
    use hotline::sip::digest::{ha1, Algorithm};
    let password = read_password()?;
    let password = password.as_str();
    let realm = &cfg.registrar.realm;
    println!("[[registrar.users]]");
    println!("user = \"{user}\"");
    println!(
        "ha1_md5 = \"{}\"",
        ha1(Algorithm::Md5, user, realm, password)
    );
    println!(
        "ha1_sha256 = \"{}\"",
        ha1(Algorithm::Sha256, user, realm, password)
    );
    Ok(())
}

async fn seed_demo(cfg: &Config) -> anyhow::Result<()> {
    let store = open_store(cfg).await?;
    let n = store.seed_demo().await?;
    println!("demo accounts ready ({n} rows)");
    store.close().await;
    Ok(())
}

async fn qc_sample(
    cfg: &Config,
    from: &str,
    to: &str,
    seed: Option<u64>,
    dry_run: bool,
) -> anyhow::Result<()> {
    use hotline::qc::sample_run::{check_period, parse_local_time, run_sample, SampleRequest};
    let plan =
        cfg.qc.sampling.plan().map_err(|_| {
            anyhow::anyhow!("the [qc.sampling] section is invalid (see check-config)")
        })?;
    let tz = plan.tz;
    let from_t = parse_local_time(from, tz).context("--from")?;
    let to_t = parse_local_time(to, tz).context("--to")?;
    check_period(from_t, to_t)?;
    anyhow::ensure!(
        !plan.rules.is_empty(),
        "no sampling rules: add [[qc.sampling.rules]] to {}",
        cfg.file.display()
    );
    std::fs::create_dir_all(&cfg.data_dir).ok();
    let store = Store::open(&cfg.database_url).await?;
    let out = run_sample(
        &store,
        &cfg.qc.sampling,
        &SampleRequest {
            from: from_t,
            to: to_t,
            seed,
            source: hotline::store::SampleSource::Cli,
            actor: "cli".into(),
            save: !dry_run,
            now: chrono::Utc::now(),
        },
    )
    .await;
    store.close().await;
    let out = out?;
    let local = |t: chrono::DateTime<chrono::Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M");
    println!(
        "period {} to {} ({tz}), seed {}, {} recordings, {} picks",
        local(out.run.period_from),
        local(out.run.period_to),
        out.run.seed,
        out.recordings,
        out.picks.len()
    );
    let header = ["recording", "started", "agent", "queue", "rule", "detail"];
    let rows: Vec<[String; 6]> = out
        .picks
        .iter()
        .map(|p| {
            [
                p.pick.recording_id.clone(),
                local(p.started_at).to_string(),
                p.agent.clone().unwrap_or_else(|| "-".into()),
                p.queue.clone().unwrap_or_else(|| "-".into()),
                p.pick.rule.clone(),
                p.pick.detail.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    if !rows.is_empty() {
        line(&header.map(String::from));
        for r in &rows {
            line(r);
        }
    }
    if out.saved {
        println!("saved as run {} (source cli)", out.run.id);
    } else {
        println!("dry run: nothing stored");
    }
    Ok(())
}

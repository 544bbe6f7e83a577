-- A new run, `running` from now, with what it was run with (seed, config, code, candidates).
INSERT INTO runs (run_id, kind, run_date, window_start, window_end, status, started_at, seed,
                  config_hash, git_rev, baseline, candidates)
VALUES ($run_id, $kind, $run_date, $start, $end, 'running', $now, $seed, $hash, $git, $baseline,
        $candidates);

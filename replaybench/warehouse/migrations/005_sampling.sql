-- Sampling like a statistician: the production mix each run was drawn from (so totals can be
-- weighted back to it), and the sample size each prompt_version would need to detect the smallest
-- difference worth detecting.
CREATE TABLE traffic_mix (
    run_id         VARCHAR NOT NULL,
    prompt_version VARCHAR NOT NULL,
    requests       BIGINT NOT NULL,   -- in the run's window, after its filters
    share          DOUBLE NOT NULL,   -- of all those requests
    PRIMARY KEY (run_id, prompt_version)
);

ALTER TABLE scores ADD COLUMN n_needed INTEGER;  -- paired requests needed to detect the difference

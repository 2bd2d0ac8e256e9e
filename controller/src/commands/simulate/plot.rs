//! `simulate --plot FILE.svg`: routes present over time, as the mock cloud holds them
//! (sampled at every inspection the run makes anyway), against the rate-limit floor, with
//! the throttles and injected faults the mock counted and, with `--kube`, leader changes.
//!
//! The SVG carries its data in `<metadata id="cni-cloud-series">` (JSON: the samples, the
//! floor line, the events and the chart's pixel mapping), so a test can check the drawing
//! against the run's JSON summary.

use std::path::Path;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::report::SimReport;

/// One look at the mock cloud: wall seconds since the first look, expected routes present,
/// and the mock's throttle and fault counters at that moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    pub t: f64,
    pub present: u64,
    pub throttled: u64,
    pub faults: u64,
}

type Probe = Box<dyn Fn() -> (u64, u64) + Send + Sync>;
/// The first sample's instant and Unix milliseconds.
type Origin = Option<(Instant, u128)>;

/// Samples taken during a run. Time 0 is the first sample, which both modes take right as
/// the clock for `seconds` starts.
pub struct Timeline {
    probe: Probe,
    inner: Mutex<(Origin, Vec<Sample>)>,
}

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

impl Timeline {
    /// `probe` reads the mock's (throttled, faults injected) counters.
    pub fn new(probe: impl Fn() -> (u64, u64) + Send + Sync + 'static) -> Timeline {
        Timeline {
            probe: Box::new(probe),
            inner: Mutex::new((None, Vec::new())),
        }
    }

    pub fn sample(&self, present: u64) {
        let (throttled, faults) = (self.probe)();
        let mut inner = self.inner.lock().expect("timeline lock");
        let t = match inner.0 {
            Some((origin, _)) => origin.elapsed().as_secs_f64(),
            None => {
                inner.0 = Some((Instant::now(), unix_ms()));
                0.0
            }
        };
        inner.1.push(Sample {
            t,
            present,
            throttled,
            faults,
        });
    }

    /// The samples, the origin in Unix milliseconds, and seconds since the origin now.
    fn snapshot(&self) -> (Vec<Sample>, u128, f64) {
        let inner = self.inner.lock().expect("timeline lock");
        match inner.0 {
            Some((at, ms)) => (inner.1.clone(), ms, at.elapsed().as_secs_f64()),
            None => (Vec::new(), unix_ms(), 0.0),
        }
    }
}

/// Everything drawn, in chart coordinates (seconds, routes).
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub cloud: String,
    pub routes_expected: u64,
    pub routes_present: u64,
    pub seconds: f64,
    pub floor_seconds: f64,
    pub converged: bool,
    pub throttled: u64,
    pub faults_injected: u64,
    pub samples: Vec<Sample>,
    /// The fastest trajectory the cloud's write bucket allows for the same work.
    pub floor: Vec<(f64, f64)>,
    /// (seconds, calls) where the mock's counter grew since the previous sample.
    pub throttle_events: Vec<(f64, u64)>,
    pub fault_events: Vec<(f64, u64)>,
    pub leader_changes: Vec<f64>,
    pub leader_killed: Option<f64>,
}

/// Where a counter grew between samples, and by how much.
fn events(samples: &[Sample], counter: impl Fn(&Sample) -> u64) -> Vec<(f64, u64)> {
    let mut before = 0;
    let mut out = Vec::new();
    for s in samples {
        let now = counter(s);
        if now > before {
            out.push((s.t, now - before));
        }
        before = before.max(now);
    }
    out
}

/// Routes present over time at the floor: AWS spends the mutating bucket's burst at once
/// and then writes at the refill rate (route writes and node preparation share it); ARM
/// writes each table in one PUT, so every route lands when its operation ends.
pub fn floor_line(report: &SimReport, until: f64) -> Vec<(f64, f64)> {
    let expected = report.fabric.routes_expected as f64;
    let floor = report.floor_seconds;
    let end = until.max(floor);
    if report.cloud == "azure" {
        return vec![(0.0, 0.0), (floor, 0.0), (floor, expected), (end, expected)];
    }
    let writes = (report.fabric.routes_expected + report.node_prep_calls).max(1) as f64;
    let burst = f64::from(cni_cloud_providers::pacing::EC2_MUTATING.burst);
    let start = expected * (burst / writes).min(1.0);
    vec![(0.0, start), (floor, expected), (end, expected)]
}

impl Series {
    pub fn new(timeline: &Timeline, report: &SimReport) -> Series {
        let (mut samples, origin_ms, now) = timeline.snapshot();
        // The final state the summary reports, at the end of the run.
        samples.push(Sample {
            t: now.max(samples.last().map_or(0.0, |s| s.t)),
            present: report.fabric.routes_present,
            throttled: report.throttled,
            faults: report.faults_injected,
        });
        let at = |ms: u128| ms.saturating_sub(origin_ms) as f64 / 1000.0;
        let (leader_changes, leader_killed) = match &report.kube {
            Some(k) => (
                k.leader_changes_unix_ms.iter().map(|&ms| at(ms)).collect(),
                k.leader_killed_unix_ms.map(at),
            ),
            None => (Vec::new(), None),
        };
        let end = samples.last().map_or(0.0, |s| s.t);
        Series {
            cloud: report.cloud.clone(),
            routes_expected: report.fabric.routes_expected,
            routes_present: report.fabric.routes_present,
            seconds: report.seconds,
            floor_seconds: report.floor_seconds,
            converged: report.converged,
            throttled: report.throttled,
            faults_injected: report.faults_injected,
            throttle_events: events(&samples, |s| s.throttled),
            fault_events: events(&samples, |s| s.faults),
            floor: floor_line(report, end),
            samples,
            leader_changes,
            leader_killed,
        }
    }
}

/// Write the picture of `report`'s run.
pub fn write(path: &Path, timeline: &Timeline, report: &SimReport) -> anyhow::Result<()> {
    let svg = render(&Series::new(timeline, report))?;
    std::fs::write(path, svg)
        .map_err(|e| anyhow::anyhow!("writing the plot to {}: {e}", path.display()))
}

#[cfg(not(feature = "plot"))]
pub fn render(_: &Series) -> anyhow::Result<String> {
    anyhow::bail!("this cni-cloud-controller was built without the `plot` feature")
}

/// Colours of the series, also named in the metadata so a reader can find each one.
#[cfg(feature = "plot")]
mod color {
    pub const ROUTES: (u8, u8, u8) = (31, 119, 180);
    pub const FLOOR: (u8, u8, u8) = (90, 90, 90);
    pub const THROTTLE: (u8, u8, u8) = (214, 39, 40);
    pub const FAULT: (u8, u8, u8) = (255, 127, 14);
    pub const LEADER: (u8, u8, u8) = (148, 103, 189);
    pub const KILL: (u8, u8, u8) = (0, 0, 0);
}

#[cfg(feature = "plot")]
pub fn render(series: &Series) -> anyhow::Result<String> {
    use color::*;
    use plotters::prelude::*;

    let rgb = |c: (u8, u8, u8)| RGBColor(c.0, c.1, c.2);
    let err = |e: &dyn std::fmt::Display| anyhow::anyhow!("drawing the plot: {e}");
    let x_end = series
        .samples
        .iter()
        .map(|s| s.t)
        .chain([series.floor_seconds, series.seconds])
        .chain(series.leader_changes.iter().copied())
        .fold(0.0f64, f64::max);
    let x_max = (x_end * 1.05).max(0.1);
    let y_top = series
        .samples
        .iter()
        .map(|s| s.present)
        .fold(series.routes_expected, u64::max);
    let y_max = (y_top as f64 * 1.08).max(1.0);
    let at = |t: f64| {
        // A marker sits on the routes line at the sample it was seen in.
        series
            .samples
            .iter()
            .find(|s| s.t >= t)
            .map_or(0.0, |s| s.present as f64)
    };

    let mut svg = String::new();
    let (area, routes_pixels) = {
        let root = SVGBackend::with_string(&mut svg, (1000, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let caption = format!(
            "{}: {} of {} routes in {:.2} s (rate-limit floor {:.2} s){}",
            series.cloud,
            series.routes_present,
            series.routes_expected,
            series.seconds,
            series.floor_seconds,
            if series.converged {
                ""
            } else {
                ", NOT converged"
            }
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 20))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("wall seconds")
            .y_desc("routes present (mock cloud)")
            .draw()
            .map_err(|e| err(&e))?;

        let floor_style = rgb(FLOOR).stroke_width(2);
        chart
            .draw_series(LineSeries::new(series.floor.iter().copied(), floor_style))
            .map_err(|e| err(&e))?
            .label(format!("rate-limit floor ({:.2} s)", series.floor_seconds))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], floor_style));

        let routes_style = rgb(ROUTES).stroke_width(2);
        let points: Vec<(f64, f64)> = series
            .samples
            .iter()
            .map(|s| (s.t, s.present as f64))
            .collect();
        chart
            .draw_series(LineSeries::new(points.iter().copied(), routes_style))
            .map_err(|e| err(&e))?
            .label("routes present")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], routes_style));

        let throttle_style = rgb(THROTTLE).stroke_width(2);
        chart
            .draw_series(
                series
                    .throttle_events
                    .iter()
                    .map(|&(t, _)| Cross::new((t, at(t)), 6, throttle_style)),
            )
            .map_err(|e| err(&e))?
            .label(format!("throttled ({} calls)", series.throttled))
            .legend(move |(x, y)| Cross::new((x + 10, y), 6, throttle_style));

        let fault_style = rgb(FAULT).filled();
        chart
            .draw_series(
                series
                    .fault_events
                    .iter()
                    .map(|&(t, _)| TriangleMarker::new((t, at(t)), 7, fault_style)),
            )
            .map_err(|e| err(&e))?
            .label(format!("faults injected ({})", series.faults_injected))
            .legend(move |(x, y)| TriangleMarker::new((x + 10, y), 7, fault_style));

        if !series.leader_changes.is_empty() || series.leader_killed.is_some() {
            let leader_style = rgb(LEADER).stroke_width(2);
            chart
                .draw_series(
                    series
                        .leader_changes
                        .iter()
                        .map(|&t| PathElement::new(vec![(t, 0.0), (t, y_max)], leader_style)),
                )
                .map_err(|e| err(&e))?
                .label(format!("leader change ({})", series.leader_changes.len()))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], leader_style));
            let kill_style = rgb(KILL).stroke_width(1);
            chart
                .draw_series(
                    series
                        .leader_killed
                        .iter()
                        .map(|&t| PathElement::new(vec![(t, 0.0), (t, y_max)], kill_style)),
                )
                .map_err(|e| err(&e))?
                .label("leader killed")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], kill_style));
        }

        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| err(&e))?;
        let (xs, ys) = chart.plotting_area().get_pixel_range();
        let pixels: Vec<(i32, i32)> = points.iter().map(|p| chart.backend_coord(p)).collect();
        root.present().map_err(|e| err(&e))?;
        (((xs.start, xs.end), (ys.start, ys.end)), pixels)
    };

    let hex = |c: (u8, u8, u8)| format!("#{:02X}{:02X}{:02X}", c.0, c.1, c.2);
    let meta = serde_json::json!({
        "series": series,
        "x_range": [0.0, x_max],
        "y_range": [0.0, y_max],
        "plot_area_pixels": {"x": [area.0.0, area.0.1], "y": [area.1.0, area.1.1]},
        "routes_pixels": routes_pixels,
        "colors": {
            "routes": hex(ROUTES), "floor": hex(FLOOR), "throttle": hex(THROTTLE),
            "fault": hex(FAULT), "leader_change": hex(LEADER), "leader_killed": hex(KILL),
        },
    });
    let meta = serde_json::to_string(&meta)?
        .replace('&', "&amp;")
        .replace('<', "&lt;");
    let open = svg
        .find("<svg")
        .and_then(|i| svg[i..].find('>').map(|j| i + j + 1))
        .ok_or_else(|| anyhow::anyhow!("the SVG backend wrote no <svg> element"))?;
    svg.insert_str(
        open,
        &format!("\n<metadata id=\"cni-cloud-series\">{meta}</metadata>"),
    );
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, present: u64, throttled: u64, faults: u64) -> Sample {
        Sample {
            t,
            present,
            throttled,
            faults,
        }
    }

    #[test]
    fn events_are_where_a_counter_grew() {
        let s = [
            sample(0.0, 0, 0, 0),
            sample(0.5, 10, 2, 0),
            sample(1.0, 20, 2, 1),
            sample(1.5, 30, 5, 1),
        ];
        assert_eq!(events(&s, |s| s.throttled), vec![(0.5, 2), (1.5, 3)]);
        assert_eq!(events(&s, |s| s.faults), vec![(1.0, 1)]);
    }

    #[test]
    fn timeline_starts_at_the_first_sample_and_reads_the_probe() {
        let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let probe = n.clone();
        let t = Timeline::new(move || (probe.load(std::sync::atomic::Ordering::Relaxed), 7));
        t.sample(1);
        n.store(3, std::sync::atomic::Ordering::Relaxed);
        t.sample(2);
        let (samples, _, now) = t.snapshot();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].t, 0.0);
        assert_eq!(
            (samples[1].present, samples[1].throttled, samples[1].faults),
            (2, 3, 7)
        );
        assert!(now >= samples[1].t);
    }

    #[cfg(feature = "plot")]
    #[test]
    fn render_embeds_the_series_and_draws_the_routes_line() {
        let series = Series {
            cloud: "aws".into(),
            routes_expected: 100,
            routes_present: 100,
            seconds: 2.0,
            floor_seconds: 1.5,
            converged: true,
            throttled: 3,
            faults_injected: 1,
            samples: vec![
                sample(0.0, 0, 0, 0),
                sample(1.0, 60, 3, 0),
                sample(2.0, 100, 3, 1),
            ],
            floor: vec![(0.0, 40.0), (1.5, 100.0), (2.0, 100.0)],
            throttle_events: vec![(1.0, 3)],
            fault_events: vec![(2.0, 1)],
            leader_changes: vec![1.2],
            leader_killed: Some(1.0),
        };
        let svg = render(&series).expect("render");
        assert!(svg.starts_with("<svg"), "{}", &svg[..80]);
        let meta_start = svg
            .find("<metadata id=\"cni-cloud-series\">")
            .expect("metadata");
        let json_start = meta_start + "<metadata id=\"cni-cloud-series\">".len();
        let json_end = json_start + svg[json_start..].find("</metadata>").expect("closed");
        let meta: serde_json::Value =
            serde_json::from_str(&svg[json_start..json_end]).expect("metadata is JSON");
        assert_eq!(meta["series"]["routes_expected"], 100);
        let pixels = meta["routes_pixels"].as_array().expect("pixels");
        assert_eq!(pixels.len(), 3);
        // The routes line is one polyline through exactly those pixels.
        let points: String = pixels
            .iter()
            .map(|p| format!("{},{} ", p[0], p[1]))
            .collect();
        let routes_color = format!(
            "#{:02X}{:02X}{:02X}",
            color::ROUTES.0,
            color::ROUTES.1,
            color::ROUTES.2
        );
        let line = svg
            .lines()
            .find(|l| l.contains("<polyline") && l.contains(&routes_color))
            .expect("routes polyline");
        assert!(line.contains(points.trim_end()), "{line}\n{points}");
        assert!(
            svg.contains("leader change (1)"),
            "legend names leader changes"
        );
        assert!(svg.contains("throttled (3 calls)"));
    }
}

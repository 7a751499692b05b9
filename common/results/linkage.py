"""A linkage result: per station pair, how many links and how good the model expects them to be."""

from __future__ import annotations

from pathlib import Path

from .base import Result


class LinkageResult(Result):
    """The link itself stays at the coordinator; this is what the researcher gets (links as record ids
    only in an evaluation run)."""

    def summary(self):
        """Links, candidates, the similarity step's links and the EM model's precision and recall per
        station pair, as a DataFrame indexed by pair."""
        import pandas as pd

        rows = [{"pair": pair, **{k: v for k, v in info.items() if not isinstance(v, (dict, list, str))}}
                for pair, info in self.raw["summary"]["pairs"].items()]
        return pd.DataFrame(rows).set_index("pair")

    pairs = summary  # the name lancelot.client has used

    def summary_lines(self) -> list[str]:
        s, c = self.raw["summary"], self.cost
        lines = [f"  records per station: {s['records_per_station']}"]
        for pair, p in s["pairs"].items():
            lines.append(f"  {pair}: {p['linked']} linked (EM-estimated precision {p['em_expected_precision']}, "
                         f"recall {p['em_expected_recall']}); by the similarity step: {p.get('linked_by_similarity')}")
        lines.append(f"  linked to all stations: {s['linked_to_all_stations']}")
        lines += [f"  warning: {w}" for w in s.get("warnings", [])]
        lines.append(f"  cost: {c['rounds']} rounds, {c['bytes_to_stations'] + c['bytes_from_stations']:,} bytes "
                     f"relayed, {c['seconds_total']} s")
        return lines

    def report(self, folder: str | Path) -> Path:
        from ..report import write_link_report

        return write_link_report(self.raw, folder)

"""tools/catalogue.py: the catalogue and API pages follow _toc.yml and the package, whatever it holds."""

import sys
import types
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import catalogue  # noqa: E402

TOC = """\
format: jb-book
root: book/intro
parts:
  - caption: Conventions
    chapters:
      - file: book/conventions/anatomy
  - caption: "Part IV: Metric learning"
    chapters:
      - file: book/metric_learning/embeddings
      - file: book/metric_learning/center.md
  - caption: Back matter
    chapters:
      - file: book/catalogue
"""


def defined_in(module: str, obj, **attributes):
    obj.__module__ = module
    for name, value in attributes.items():
        setattr(obj, name, value)
    return obj


def contrastive_loss(x1, x2, target, *, eps=1e-07, margin=1.0):
    """Contrastive loss."""


def recall_at_k(embeddings, labels, *, k=1):
    """Recall at k, a metric."""


def pairwise_distances(x, y, *, eps=1e-12):
    """A helper, importable from its chapter's module only."""


class LossModule(torch.nn.Module):  # a base class: no forward of its own, no catalogue line
    function = None


class ContrastiveLoss(LossModule):  # generated: lives in lossbook.nn, placed with its function
    function = staticmethod(contrastive_loss)

    def forward(self, x1, x2, target):
        return contrastive_loss(x1, x2, target)


class CenterLoss(torch.nn.Module):  # stateful, written in its chapter, with an oracle
    oracle = "NumPy transcription"

    def forward(self, features, labels):
        pass


class OIMLoss(LossModule):  # stateful, written in its chapter, without an oracle
    def forward(self, features, labels):
        pass


@pytest.fixture
def future_package(monkeypatch, tmp_path):
    """The package as it is about to be: losses and metrics only in ``lossbook.__all__``,
    helpers in their chapter's module, real and stateful classes in ``lossbook.nn``;
    a new part (metric_learning) whose chapter ``oim`` is not in the toc yet."""
    defined_in("lossbook.metric_learning.contrastive", contrastive_loss,
               nn_module_name="ContrastiveLoss", oracle="NumPy; Siamese demo")
    defined_in("lossbook.metric_learning.embeddings", recall_at_k)
    defined_in("lossbook.metric_learning.embeddings", pairwise_distances)
    defined_in("lossbook.nn", ContrastiveLoss)
    defined_in("lossbook.metric_learning.center", CenterLoss)
    defined_in("lossbook.metric_learning.oim", OIMLoss)
    defined_in("lossbook.conventions.modules", LossModule)
    embeddings = types.ModuleType("lossbook.metric_learning.embeddings")
    embeddings.recall_at_k, embeddings.pairwise_distances = recall_at_k, pairwise_distances
    embeddings.__all__ = ["pairwise_distances", "recall_at_k"]
    monkeypatch.setitem(sys.modules, embeddings.__name__, embeddings)
    for chapter, objects in (("center", [CenterLoss]), ("contrastive", [contrastive_loss]), ("oim", [OIMLoss])):
        module = types.ModuleType(f"lossbook.metric_learning.{chapter}")  # the real chapters exist now: hide them
        for obj in objects:
            setattr(module, obj.__name__, obj)
        module.__all__ = [obj.__name__ for obj in objects]
        monkeypatch.setitem(sys.modules, module.__name__, module)
    nn = types.ModuleType("lossbook.nn")
    nn.ContrastiveLoss, nn.CenterLoss, nn.OIMLoss, nn.LossModule = ContrastiveLoss, CenterLoss, OIMLoss, LossModule
    nn.__all__ = ["CenterLoss", "ContrastiveLoss", "LossModule", "OIMLoss"]
    package = types.ModuleType("lossbook")
    package.nn, package.contrastive_loss, package.recall_at_k = nn, contrastive_loss, recall_at_k
    package.__all__ = ["contrastive_loss", "recall_at_k"]
    monkeypatch.setattr(catalogue, "lossbook", package)
    toc = tmp_path / "_toc.yml"
    toc.write_text(TOC)
    monkeypatch.setattr(catalogue, "TOC", toc)
    monkeypatch.setattr(catalogue, "BOOK", tmp_path / "book")  # titles fall back to the document name
    return package


def test_parts_captions_and_order_come_from_the_toc(tmp_path):
    toc = tmp_path / "_toc.yml"
    toc.write_text(TOC)
    assert catalogue.toc_parts(toc) == {
        "conventions": ("Conventions", ["anatomy"]),
        "metric_learning": ("Part IV: Metric learning", ["embeddings", "center"]),
    }


def test_the_real_toc_gives_the_parts_of_the_book():
    parts = catalogue.toc_parts()
    assert list(parts)[0] == "conventions"
    assert parts["regression"][1][:2] == ["l1_l2", "huber"]
    for part, (_, chapters) in parts.items():
        for chapter in chapters:
            assert (ROOT / "book" / part / f"{chapter}.md").exists()


def test_a_new_part_needs_no_code_change(future_package):
    rows = [(e.name, e.part, e.chapter) for e in catalogue.entries()]
    assert rows == [  # toc order: embeddings, center; then oim, which the toc lacks yet
        ("recall_at_k", "metric_learning", "embeddings"),
        ("CenterLoss", "metric_learning", "center"),
        ("contrastive_loss", "metric_learning", "contrastive"),
        ("OIMLoss", "metric_learning", "oim"),
    ]


def test_a_chapter_missing_from_the_toc_is_listed_last_with_a_note(future_package, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(catalogue, "PAGES", {"catalogue": tmp_path / "c.md", "api": tmp_path / "a.md"})
    assert catalogue.main([]) == 0
    note = capsys.readouterr().err
    assert "book/metric_learning/oim is not in _toc.yml" in note
    assert "book/metric_learning/contrastive is not in _toc.yml" in note
    assert "center" not in note
    assert catalogue.main(["--check"]) == 0


def test_catalogue_lines(future_package):
    page = catalogue.render_catalogue()
    assert "## Part IV: Metric learning" in page and "## Conventions" not in page  # no loss there
    lines = page.splitlines()
    row = next(line for line in lines if "contrastive_loss" in line)
    assert row == (
        "- {py:func}`contrastive_loss <lossbook.contrastive_loss>` and "
        "{py:class}`ContrastiveLoss <lossbook.nn.ContrastiveLoss>`, "
        "in {doc}`metric_learning/contrastive <metric_learning/contrastive>`; tested against NumPy; Siamese demo"
    )
    recall = next(line for line in lines if "recall_at_k" in line)  # a metric: no module, no oracle
    assert "lossbook.nn" not in recall and "tested against" not in recall
    center = next(line for line in lines if "CenterLoss" in line)
    assert center.startswith("- {py:class}`CenterLoss <lossbook.nn.CenterLoss>`, in ")
    assert center.endswith("; tested against NumPy transcription")
    assert "tested against" not in next(line for line in lines if "OIMLoss" in line)
    assert "pairwise_distances" not in page  # helpers are not losses
    assert "eps" not in page and "margin" not in page  # no signatures: the API page has them


def test_api_documents_losses_their_modules_stateful_modules_and_helpers(future_package):
    page = catalogue.render_api()
    directives = [line for line in page.splitlines() if line.startswith(".. ")]
    helpers = [d for d in directives if ":: lossbook.conventions." in d]
    assert ".. autofunction:: lossbook.conventions.anatomy.reduce_loss" in helpers  # out of lossbook.__all__
    assert directives[len(helpers):] == [
        ".. autofunction:: lossbook.recall_at_k",
        ".. autoclass:: lossbook.nn.CenterLoss",
        ".. autofunction:: lossbook.contrastive_loss",
        ".. autoclass:: lossbook.nn.ContrastiveLoss",
        ".. autoclass:: lossbook.nn.OIMLoss",
        ".. autofunction:: lossbook.metric_learning.embeddings.pairwise_distances",
    ]
    # A part with losses lists its helpers under a heading of their own, after the losses.
    assert page.index("## Conventions") < page.index("## Part IV: Metric learning") < page.index("### Helpers")
    assert page.count("### Helpers") == 1


def test_a_module_also_in_the_flat_namespace_is_listed_once(future_package):
    future_package.CenterLoss = CenterLoss
    future_package.__all__ = [*future_package.__all__, "CenterLoss"]
    assert [e.name for e in catalogue.entries()].count("CenterLoss") == 1


def test_the_package():
    """Every function of lossbook.__all__ and every loss class of lossbook.nn, once; the
    base class LossModule is documented with the helpers of its chapter, not as a loss."""
    import lossbook
    import lossbook.nn

    found = catalogue.entries()
    names = [e.name for e in found]
    assert len(names) == len(set(names))
    functions = [n for n in lossbook.__all__ if callable(getattr(lossbook, n))]
    assert sorted(e.name for e in found if e.obj is not None) == sorted(functions)
    classes = {n for n in lossbook.nn.__all__ if catalogue.is_loss_class(getattr(lossbook.nn, n))}
    assert {e.module.__name__ for e in found if e.module is not None} == classes
    assert "LossModule" not in lossbook.nn.__all__  # a base class, not a loss: in lossbook.conventions.modules
    api = catalogue.render_api(found)
    assert ".. autoclass:: lossbook.conventions.modules.LossModule" in api
    assert ".. autofunction:: lossbook.conventions.anatomy.reduce_loss" in api
    huber = next(e for e in found if e.name == "huber_loss")
    assert (huber.module, huber.document) == (lossbook.nn.HuberLoss, "regression/huber")
    order = list(catalogue.toc_parts())
    assert [order.index(e.part) for e in found] == sorted(order.index(e.part) for e in found)

"""The project document: one object that owns the open project, its undo stack and its
shape inference, and tells every panel when anything changed.

Panels never edit the spec. They call the edit methods here (``insert_kind``, ``remove``,
``move``, ``set_arg``, ``set_frozen``, ...), each of which pushes one ``QUndoCommand`` from
``ui.document.commands``; the commands call the small mutators below (``apply_insert``,
``apply_remove``, ...),
which announce structural changes with begin/end signals (for the Qt item model) and then
``changed`` once inference is fresh. A training dock observes ``changed`` / ``frozenChanged``
and may lock structural edits with ``set_edit_lock`` while a run owns the model.

One-click fixes: a problem whose fix is mechanical carries a ``remedies.Remedy`` (on its
``LayerError``); ``remedy_for`` finds the one for a row (or for the model input) and
``apply_remedy`` makes it as ONE undoable edit named by its label, through the same commands
as any other edit. Problems of the model against the data come from the training panel's
probe (``set_fit_error``), since only it reads the data.

``costs`` (``ui.document.cost_figures.CostFigures``) holds what the model costs (MACs, training
memory, the batch that fits, latency once profiled), recomputed off the UI thread after changes
once the window has started it.

Parallel blocks: every edit keeps them well formed (``spec.nesting_problem``): a Parallel holds
only Branch rows and at least two, a Branch sits only in a Parallel. ``add_branch`` /
``remove_branch`` are the Branch edits; a new Parallel comes with two empty branches;
``insertion_point`` says where a layer added "after" a row goes (into a selected Branch).
"""
from __future__ import annotations

import re
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoStack

from workbench.model import build, catalog, expand, remedies
from workbench.project import project_file as projects
from workbench.errors import LayerError, WorkbenchError
from workbench.model.spec import MAX_DEPTH, LayerSpec, ModelSpec, id_problem, nesting_problem

from ui.document import commands
from ui.document.cost_figures import CostFigures


class ProjectDocument(QObject):
    # structure (parent is a layer id, or None for the top level); rows are list indices
    layersAboutToBeInserted = Signal(object, int, int)
    layersInserted = Signal(object, int, int)
    layersAboutToBeRemoved = Signal(object, int, int)
    layersRemoved = Signal(object, int, int)
    layerAboutToBeMoved = Signal(object, int, object, int)  # src parent, row, dst parent, row (Qt's)
    layerMoved = Signal()
    aboutToReset = Signal()
    reset = Signal()  # a different project (or input shape) replaced everything
    changed = Signal()  # after every edit, with inference up to date
    frozenChanged = Signal(str, bool)  # module path ('conv1' or 'backbone.layer1'), frozen
    pathChanged = Signal()
    lockChanged = Signal(str)  # '' when unlocked
    runsChanged = Signal()  # run records were added (a run ended, here or under torchrun)
    fitChanged = Signal()  # the model's problem with the data (``fit_error``) changed

    def __init__(self, project: projects.Project, parent: QObject | None = None):
        super().__init__(parent)
        self.undo_stack = QUndoStack(self)
        # QUndoStack's destructor clears itself and signals; nobody may hear that mid-teardown
        stack = self.undo_stack
        self.destroyed.connect(lambda *_: stack.blockSignals(True))
        self.project = project
        self.info: build.ModelInfo = build.infer(project.model)
        self._by_id: dict[str, build.LayerInfo] = {}
        self.edit_lock = ""
        self.fit_error: LayerError | None = None  # why the model does not fit the data (set_fit_error)
        self._reinfer()
        self.costs = CostFigures(self)  # MACs, memory, latency per row (computed off the UI thread)

    # ------------------------------------------------------------ reading
    @property
    def spec(self) -> ModelSpec:
        return self.project.model

    @property
    def path(self) -> Path | None:
        return self.project.path

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    def layer_info(self, layer_id: str) -> build.LayerInfo | None:
        return self._by_id.get(layer_id)

    def layers_in(self, parent_id: str | None) -> list[LayerSpec]:
        """The layer list of the top level (None) or of a block that holds layers (``catalog.nests``)."""
        if parent_id is None:
            return self.spec.layers
        parent = self.spec.find(parent_id)
        if parent is None or not catalog.nests(parent.type):
            raise KeyError(parent_id)
        return parent.layers

    def locate(self, layer_id: str) -> tuple[str | None, int]:
        """(parent id or None, row) of a layer."""
        def search(layers, parent):
            for row, layer in enumerate(layers):
                if layer.id == layer_id:
                    return parent, row
                if catalog.nests(layer.type):
                    found = search(layer.layers, layer.id)
                    if found:
                        return found
            return None
        found = search(self.spec.layers, None)
        if found is None:
            raise KeyError(layer_id)
        return found

    def is_inside(self, layer_id: str, ancestor_id: str) -> bool:
        """True when layer_id is ancestor_id or nested (at any depth) in it."""
        parent: str | None = layer_id
        while parent is not None:
            if parent == ancestor_id:
                return True
            parent = self.locate(parent)[0]
        return False

    def frozen_above(self, layer_id: str) -> str | None:
        """The id of the frozen block (Residual, Parallel, Branch) a layer sits in (its weights are fixed with the
        block's), or None. Read from the index the last inference made (the model as shown); a layer
        added since, before its inference, is looked up in the spec."""
        if layer_id not in self._parents:
            return self._frozen_above_in_spec(layer_id)
        parent = self._parents[layer_id]
        while parent is not None:
            if self._layers[parent].frozen:
                return parent
            parent = self._parents[parent]
        return None

    def _frozen_above_in_spec(self, layer_id: str) -> str | None:
        parent = self.locate(layer_id)[0]
        while parent is not None:
            if self.spec.find(parent).frozen:
                return parent
            parent = self.locate(parent)[0]
        return None

    def freeze_locked(self, layer_id: str, stage: str | None = None) -> str | None:
        """Why a freeze box cannot change (None: it can): a stage of a frozen backbone, or a
        layer inside a frozen block, is frozen with it."""
        if stage is not None and self.spec.find(layer_id).frozen:
            return layer_id
        return self.frozen_above(layer_id)

    def outermost(self, layer_ids: list[str]) -> list[str]:
        """The ids that are not inside another of them (a block carries its nested layers)."""
        return [i for i in layer_ids if not any(o != i and self.is_inside(i, o) for o in layer_ids)]

    def fresh_id(self, base: str, taken: set[str] | None = None) -> str:
        """An unused id from a layer id or type: 'conv2d_1' -> 'conv2d_2', 'fc' -> 'fc_1'."""
        taken = self.spec.ids() | (taken or set())
        stem = re.sub(r"_\d+$", "", base) or "layer"
        n = 1
        while f"{stem}_{n}" in taken:
            n += 1
        return f"{stem}_{n}"

    # ------------------------------------------------------------ problems and their one-click fixes
    def set_fit_error(self, error: LayerError | None) -> None:
        """What the data check (the training panel's probe) found wrong with the model, or None."""
        if error is not self.fit_error:
            self.fit_error = error
            self.fitChanged.emit()

    def fit_problem_for(self, layer_id: str | None) -> LayerError | None:
        """The data check's problem shown with a row (``layer_id``) or with the model input
        (None): one about the input (its remedy sets the input, or it has none and names the
        input) goes with the input, any other with the layer it names."""
        error = self.fit_error
        if error is None:
            return None
        about_input = (any(isinstance(e, remedies.SetInput) for e in error.remedy.edits) if error.remedy
                       else error.problem.startswith(("the model input", "the model takes")))
        if layer_id is None:
            return error if about_input else None
        return error if not about_input and error.layer_id == layer_id else None

    def remedy_for(self, layer_id: str | None) -> remedies.Remedy | None:
        """The one-click fix of a row's problem (its own, else the data check's), or of the
        model input's (None); None where there is no mechanical fix."""
        info = self.layer_info(layer_id) if layer_id else None
        if info is not None and info.error is not None:
            return info.error.remedy
        error = self.fit_problem_for(layer_id)
        return error.remedy if error is not None else None

    def first_problem(self) -> LayerError | None:
        """The problem the status bar shows: the first row that cannot work, else the data check's."""
        return self.info.error or self.fit_error

    def apply_remedy(self, remedy: remedies.Remedy) -> None:
        """Make a one-click fix as ONE undoable edit named by its label."""
        self._unlocked()
        gone = sorted(i for i in remedy.layers() if self.spec.find(i) is None)
        if gone:
            raise WorkbenchError(f"the fix \"{remedy.label}\" no longer applies: layer '{gone[0]}' is gone")
        stack = self.undo_stack
        stack.beginMacro(remedy.label)
        try:
            for edit in remedy.edits:
                self._apply_edit(edit)
        finally:
            stack.endMacro()
        if self.fit_error is not None and self.fit_error.remedy == remedy:
            self.set_fit_error(None)  # fixed; the next data check says if anything else is wrong

    def _apply_edit(self, edit: remedies.Edit) -> None:
        if isinstance(edit, remedies.SetArgs):
            for name, value in edit.args:
                self.set_arg(edit.layer, name, value)
        elif isinstance(edit, remedies.InsertLayer):
            parent, row = self.locate(edit.before)
            layer = LayerSpec(self.fresh_id(edit.type.lower()), edit.type, dict(edit.args))
            self.undo_stack.push(commands.InsertLayers(self, parent, row, [layer], ""))
        elif isinstance(edit, remedies.RemoveLayer):
            self.undo_stack.push(commands.RemoveLayers(self, [edit.layer], ""))
        elif isinstance(edit, remedies.SetInput):
            self.set_input(tuple(edit.shape), edit.dtype)

    # ------------------------------------------------------------ edits (each one undoable)
    def set_edit_lock(self, reason: str) -> None:
        """Refuse structural and argument edits while ``reason`` ('' unlocks). Freeze
        toggles stay allowed: a running training picks them up between steps."""
        self.edit_lock = reason
        self.lockChanged.emit(reason)

    def add_runs(self, records: list[dict]) -> None:
        """Add run records the project does not have yet (by run folder and start), and say so."""
        known = {(r.get("dir"), r.get("started")) for r in self.project.runs}
        new = [r for r in records if (r.get("dir"), r.get("started")) not in known]
        if new:
            self.project.runs.extend(new)
            self.runsChanged.emit()

    def _unlocked(self) -> None:
        if self.edit_lock:
            raise WorkbenchError(f"the model cannot change while {self.edit_lock}; stop it first "
                                 "(freezing and unfreezing still work)")

    def new_layer(self, type_name: str, taken: set[str] | None = None) -> LayerSpec:
        """A layer of a catalog kind with its starter arguments; a Parallel with two empty branches."""
        kind = catalog.kind(type_name)
        if kind is None:
            raise WorkbenchError(f"unknown layer type {type_name!r}; pick one from the palette")
        layer = LayerSpec(self.fresh_id(type_name.lower(), taken), type_name, kind.starter_args())
        if type_name == "Parallel":
            taken = set(taken or ()) | {layer.id}
            for _ in range(2):
                branch = LayerSpec(self.fresh_id("branch", taken), "Branch")
                taken.add(branch.id)
                layer.layers.append(branch)
        return layer

    def insertion_point(self, layer_id: str | None) -> tuple[str | None, int | None]:
        """Where a layer added "after" a row goes: (parent id, row; None: at the end). After a
        layer in its block; into a Branch row (at its end), since only branches sit beside it."""
        if layer_id is None:
            return None, None
        layer = self.spec.find(layer_id)
        if layer is not None and layer.type == "Branch":
            return layer_id, None
        parent, row = self.locate(layer_id)
        return parent, row + 1

    def _check_place(self, layers: list[LayerSpec], parent_id: str | None) -> None:
        """Refuse layers that cannot stand in ``parent_id`` (a layer straight in a Parallel, a
        Branch outside one), naming the layer and saying where it can go."""
        parent_type = self.spec.find(parent_id).type if parent_id is not None else None
        for layer in layers:
            problem = nesting_problem(layer, parent_type)
            if problem is not None:
                raise WorkbenchError(f"'{layer.id}' cannot go there: {problem[0]}; {problem[1]}")

    def _check_branches_left(self, leaving: list[str]) -> None:
        """Refuse to take branches out of a Parallel (a delete, a move) below its two."""
        for parallel in {self.locate(i)[0] for i in leaving if self.spec.find(i).type == "Branch"}:
            if parallel is None or any(self.is_inside(parallel, i) for i in leaving):
                continue  # the Parallel goes too
            left = [b.id for b in self.spec.find(parallel).layers if b.id not in leaving]
            if len(left) < 2:
                raise WorkbenchError(f"the Parallel '{parallel}' needs at least two branches; it would keep "
                                     f"{len(left)}: add a branch first, or delete the whole Parallel")

    def add_branch(self, parallel_id: str) -> str:
        """Add an empty Branch (the identity) at the end of a Parallel as one undoable edit; its id."""
        self._unlocked()
        parallel = self.spec.find(parallel_id)
        if parallel is None or parallel.type != "Parallel":
            raise WorkbenchError(f"'{parallel_id}' is not a Parallel block: select a Parallel or one of its branches")
        branch = LayerSpec(self.fresh_id("branch"), "Branch")
        self.insert_layers([branch], parallel_id, None, f"Add Branch '{branch.id}' to '{parallel_id}'")
        return branch.id

    def remove_branch(self, branch_id: str) -> None:
        """Remove a Branch with its layers (one undoable edit); a Parallel keeps at least two."""
        layer = self.spec.find(branch_id)
        if layer is None or layer.type != "Branch":
            raise WorkbenchError(f"'{branch_id}' is not a branch: select a Branch row of a Parallel")
        self.remove([branch_id], "Remove Branch")

    def insert_kind(self, type_name: str, parent_id: str | None = None, row: int | None = None) -> str:
        """Add a new layer of a catalog type; return its id."""
        layer = self.new_layer(type_name)
        self.insert_layers([layer], parent_id, row, f"Add {type_name} '{layer.id}'")
        return layer.id

    def insert_layers(self, layers: list[LayerSpec], parent_id: str | None, row: int | None, text: str) -> None:
        self._unlocked()
        siblings = self.layers_in(parent_id)
        self._check_place(layers, parent_id)
        row = len(siblings) if row is None or row < 0 or row > len(siblings) else row
        self.undo_stack.push(commands.InsertLayers(self, parent_id, row, layers, text))

    def expand_backbone(self, layer_id: str) -> list[str]:
        """Replace a torchvision backbone row with the layers it is made of, as one undoable edit
        (workbench.model.expand); a WorkbenchError says why an architecture cannot be expanded.
        Returns the ids of the rows that took its place."""
        self._unlocked()
        _, expansion = expand.expand_layer(self.spec, layer_id)
        parent, row = self.locate(layer_id)
        self.undo_stack.beginMacro(f"Expand '{layer_id}' into Layers")
        try:
            self.undo_stack.push(commands.RemoveLayers(self, [layer_id], ""))
            self.undo_stack.push(commands.InsertLayers(self, parent, row, expansion.layers, ""))
        finally:
            self.undo_stack.endMacro()
        return [layer.id for layer in expansion.layers]

    def remove(self, layer_ids: list[str], verb: str = "Delete") -> None:
        self._unlocked()
        ids = self.outermost(layer_ids)
        if not ids:
            return
        self._check_branches_left(ids)
        text = f"{verb} '{ids[0]}'" if len(ids) == 1 else f"{verb} {len(ids)} layers"
        self.undo_stack.push(commands.RemoveLayers(self, ids, text))

    def duplicate(self, layer_ids: list[str]) -> list[str]:
        """Copy layers (nested ones too, with fresh ids) right after themselves."""
        self._unlocked()
        layer_ids = self.outermost(layer_ids)
        new_ids: list[str] = []
        self.undo_stack.beginMacro(f"Duplicate '{layer_ids[0]}'" if len(layer_ids) == 1
                                   else f"Duplicate {len(layer_ids)} layers")
        try:
            for layer_id in layer_ids:
                parent, row = self.locate(layer_id)
                copy = self.spec.find(layer_id).copy()
                self._renumber(copy)
                new_ids.append(copy.id)
                self.undo_stack.push(commands.InsertLayers(self, parent, row + 1, [copy], ""))
        finally:
            self.undo_stack.endMacro()
        return new_ids

    def paste(self, layers: list[LayerSpec], parent_id: str | None, row: int | None) -> list[str]:
        """Insert copies of layers (from the clipboard, already checked as a project file's) at
        ``row`` of ``parent_id`` as one edit; an id this model already uses gets a fresh one
        ('fc' -> 'fc_1'), the others keep theirs. Returns the new top-level ids."""
        self._unlocked()
        if not layers:
            return []
        depth = 0 if parent_id is None else 1 + self._depth_of(parent_id)
        deepest = depth + max(_nesting(layer) for layer in layers)
        if deepest > MAX_DEPTH:
            raise WorkbenchError(f"pasted here the layers would nest {deepest} levels deep; layers nest at most "
                                 f"{MAX_DEPTH} deep: paste them at the top level or in a shallower block")
        copies = [layer.copy() for layer in layers]
        taken: set[str] = set()
        for copy in copies:
            self._unclash(copy, taken)
        ids = [copy.id for copy in copies]
        text = f"Paste '{ids[0]}'" if len(ids) == 1 else f"Paste {len(ids)} layers"
        self.insert_layers(copies, parent_id, row, text)
        return ids

    def _depth_of(self, layer_id: str) -> int:
        """How many blocks a layer sits in (0 at the top level)."""
        parent = self.locate(layer_id)[0]
        return 0 if parent is None else 1 + self._depth_of(parent)

    def _unclash(self, layer: LayerSpec, taken: set[str]) -> None:
        if layer.id in taken or self.spec.find(layer.id) is not None:
            layer.id = self.fresh_id(layer.id, taken)
        taken.add(layer.id)
        for child in layer.layers:
            self._unclash(child, taken)

    def _renumber(self, layer: LayerSpec, taken: set[str] | None = None) -> None:
        taken = set() if taken is None else taken
        layer.id = self.fresh_id(layer.id, taken)
        taken.add(layer.id)
        for child in layer.layers:
            self._renumber(child, taken)

    def move(self, layer_ids: list[str], parent_id: str | None, before_row: int | None) -> bool:
        """Move layers (in order) to sit before row ``before_row`` of ``parent_id`` as it is now
        (None: at the end). Returns False when nothing moved."""
        self._unlocked()
        layer_ids = self.outermost(layer_ids)
        if parent_id is not None and any(self.is_inside(parent_id, i) for i in layer_ids):
            raise WorkbenchError("a block cannot be moved into itself")
        siblings = self.layers_in(parent_id)
        self._check_place([self.spec.find(i) for i in layer_ids], parent_id)
        self._check_branches_left([i for i in layer_ids if self.locate(i)[0] != parent_id])
        anchor = next((s for s in siblings[before_row:] if s.id not in layer_ids), None) \
            if before_row is not None else None
        if self._moves_nothing(layer_ids, parent_id, anchor):
            return False
        text = f"Move '{layer_ids[0]}'" if len(layer_ids) == 1 else f"Move {len(layer_ids)} layers"
        self.undo_stack.beginMacro(text)
        try:
            for layer_id in layer_ids:
                self.undo_stack.push(commands.MoveLayer(self, layer_id, parent_id, anchor.id if anchor else None))
        finally:
            self.undo_stack.endMacro()
        return True

    def _moves_nothing(self, ids: list[str], parent_id: str | None, anchor: LayerSpec | None) -> bool:
        siblings = [s.id for s in self.layers_in(parent_id)]
        if not all(i in siblings for i in ids):
            return False
        rest = [s for s in siblings if s not in ids]
        at = rest.index(anchor.id) if anchor else len(rest)
        return rest[:at] + ids + rest[at:] == siblings

    def set_arg(self, layer_id: str, name: str, value) -> None:
        """Set one argument (``commands.UNSET`` removes it so it is inferred or defaulted)."""
        self._unlocked()
        layer = self.spec.find(layer_id)
        if layer.args.get(name, commands.UNSET) == value:
            return
        self.undo_stack.push(commands.SetArg(self, layer_id, name, value))

    def set_frozen(self, layer_id: str, frozen: bool) -> None:
        if self.spec.find(layer_id).frozen != frozen:
            self.undo_stack.push(commands.SetFrozen(self, layer_id, None, frozen))

    def set_stage_frozen(self, layer_id: str, stage: str, frozen: bool) -> None:
        if (stage in self.spec.find(layer_id).frozen_stages) != frozen:
            self.undo_stack.push(commands.SetFrozen(self, layer_id, stage, frozen))

    def rename(self, layer_id: str, new_id: str) -> None:
        self._unlocked()
        new_id = new_id.strip()
        if new_id == layer_id:
            return
        problem = id_problem(new_id)
        if problem:
            raise WorkbenchError(f"the id {problem}")
        if new_id in self.spec.ids():
            raise WorkbenchError(f"the id {new_id!r} is already used by another layer; choose another")
        self.undo_stack.push(commands.RenameLayer(self, layer_id, new_id))

    def set_input(self, shape: tuple[int, ...], dtype: str | None = None) -> None:
        self._unlocked()
        dtype = dtype or self.spec.input_dtype
        if tuple(shape) != tuple(self.spec.input_shape) or dtype != self.spec.input_dtype:
            self.undo_stack.push(commands.SetInput(self, tuple(shape), dtype))

    # ------------------------------------------------------------ mutators
    # The undo commands (ui.document.commands) call these: each changes the model without
    # recording history and tells the views. Edits go through the methods above.
    def apply_insert(self, parent_id: str | None, row: int, layers: list[LayerSpec]) -> None:
        self.layersAboutToBeInserted.emit(parent_id, row, row + len(layers) - 1)
        self.layers_in(parent_id)[row:row] = layers
        self._reinfer()
        self.layersInserted.emit(parent_id, row, row + len(layers) - 1)
        self.changed.emit()

    def apply_remove(self, parent_id: str | None, row: int) -> LayerSpec:
        self.layersAboutToBeRemoved.emit(parent_id, row, row)
        layer = self.layers_in(parent_id).pop(row)
        self._reinfer()
        self.layersRemoved.emit(parent_id, row, row)
        self.changed.emit()
        return layer

    def apply_move(self, layer_id: str, parent_id: str | None, index: int) -> None:
        """Move a layer to ``index`` of ``parent_id``'s list as it is once the layer is out."""
        src_parent, src_row = self.locate(layer_id)
        same = src_parent == parent_id
        if same and index == src_row:
            return
        qt_row = index + 1 if same and index > src_row else index
        self.layerAboutToBeMoved.emit(src_parent, src_row, parent_id, qt_row)
        layer = self.layers_in(src_parent).pop(src_row)
        self.layers_in(parent_id).insert(index, layer)
        self._reinfer()
        self.layerMoved.emit()
        self.changed.emit()

    def apply_update(self, layer_id: str, frozen_path: str | None = None, frozen: bool = False) -> None:
        """After a layer's args, flags or id changed in place."""
        self._reinfer()
        self.changed.emit()
        if frozen_path is not None:
            self.frozenChanged.emit(frozen_path, frozen)

    def _replace_model(self, fn) -> None:
        self.aboutToReset.emit()
        fn()
        self._reinfer()
        self.reset.emit()
        self.changed.emit()

    def _reinfer(self) -> None:
        self.info = build.infer(self.spec)
        self._by_id = {row.id: row for row in self.info.rows()}
        # Every layer and the block it sits in, by id: the stack asks for each row on screen after
        # every edit (frozen_above), where a walk of the spec per row cost a 200-layer stack ~1 ms.
        self._layers, self._parents = {}, {}

        def index(layers, parent: str | None) -> None:
            for layer in layers:
                self._layers[layer.id], self._parents[layer.id] = layer, parent
                if catalog.nests(layer.type):
                    index(layer.layers, layer.id)
        index(self.spec.layers, None)

    # ------------------------------------------------------------ files
    def replace_project(self, project: projects.Project) -> None:
        """Show another project (after New / Open): a fresh history, nothing modified."""
        def swap():
            self.project = project
        self.undo_stack.clear()
        self.set_fit_error(None)
        self._replace_model(swap)
        self.undo_stack.setClean()
        self.pathChanged.emit()

    def save(self, path: Path | str | None = None) -> Path:
        target = projects.save(self.project, path)
        self.undo_stack.setClean()
        self.pathChanged.emit()
        return target


def _nesting(layer: LayerSpec) -> int:
    """Levels a layer takes: 1, plus the deepest of its nested layers."""
    return 1 + max((_nesting(child) for child in layer.layers), default=0)

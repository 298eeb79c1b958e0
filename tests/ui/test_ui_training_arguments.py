"""The Training settings form's choices and their own arguments (Args...): the optimiser, the
schedule and the loss, each edit undoable, a changed choice dropping what it does not take."""
from __future__ import annotations

from workbench.project import project_file as project


def test_choosing_an_optimizer_and_its_arguments_in_the_form(qtbot, window):
    doc, form = window.doc, window.training.panel.form
    box = form.fields[("optimizer", "type")].widget
    before = doc.project.training
    box.setCurrentIndex(box.findText("Adadelta"))
    box.activated.emit(box.currentIndex())
    assert doc.project.training.optimizer.type == "Adadelta"
    dialog = form.edit_arguments("optimizer")
    assert list(dialog.fields) == ["rho", "eps", "weight_decay", "maximize"]  # Adadelta's, from its signature
    assert dialog.fields["rho"].widget.placeholderText() == "default: 0.9"
    dialog.fields["rho"].widget.setText("0.8")
    dialog.fields["rho"].widget.textEdited.emit("0.8")
    assert doc.project.training.optimizer.rho == 0.8
    dialog.fields["rho"].widget.textEdited.emit("1.5")  # refused, said under the fields, not applied
    assert doc.project.training.optimizer.rho == 0.8 and "rho must be <= 1" in dialog.problem.text()
    box.setCurrentIndex(box.findText("Adam"))
    box.activated.emit(box.currentIndex())  # Adam takes no rho: it goes, and the open form shows Adam's
    assert doc.project.training.optimizer.rho is None and "beta1" in dialog.fields
    project.from_json(doc.project.to_json())  # what the window made is a valid project
    doc.undo_stack.undo()
    assert doc.project.training.optimizer.rho == 0.8
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.project.training == before
    dialog.close()


def test_schedule_loss_and_layer_rates_in_the_form(qtbot, window):
    doc, form = window.doc, window.training.panel.form
    box = form.fields[("schedule", "type")].widget
    box.setCurrentIndex(box.findText("StepLR"))
    box.activated.emit(box.currentIndex())
    dialog = form.edit_arguments("schedule")
    assert list(dialog.fields) == ["step_size", "gamma", "warmup_epochs", "warmup_start_factor"]
    dialog.fields["warmup_epochs"].widget.setValue(2)
    assert doc.project.training.schedule.warmup_epochs == 2
    dialog.close()
    loss = form.fields[("training", "loss")].widget
    loss.setCurrentIndex(loss.findText("CrossEntropyLoss"))
    loss.activated.emit(loss.currentIndex())
    dialog = form.edit_arguments("loss_options")
    assert list(dialog.fields) == ["label_smoothing"] and list(dialog.texts) == ["weight"]
    dialog.fields["label_smoothing"].widget.setValue(0.1)
    assert doc.project.training.loss_options.label_smoothing == 0.1
    dialog.close()
    dialog = form.edit_arguments("optimizer")
    line = dialog.texts["lr_scale"]
    line.setText("nope=0.1")
    line.editingFinished.emit()
    assert "no layer or backbone stage 'nope'" in dialog.problem.text() and not doc.project.training.optimizer.lr_scale
    first = doc.spec.layers[0].id
    line.setText(f"{first}=0.1")
    line.editingFinished.emit()
    assert doc.project.training.optimizer.lr_scale == {first: 0.1}
    assert "lr_scale" in form.arg_buttons["optimizer"].toolTip()
    dialog.close()

"""The open project as a document: undoable edits and the undo commands."""

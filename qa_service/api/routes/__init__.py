"""One module a feature: questions (ask, search), documents, feedback, admin, operations, widget."""

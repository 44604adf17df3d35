"""Raw text -> BERT pretraining TFRecords (create_pretraining_data.py as a Beam job) and WordPiece vocabularies."""

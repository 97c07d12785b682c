"""`ssiw labels`: how well the label texts separate (similarity heatmap, separation score) and which
labels read as duplicates. Not the training label space (trainer/model/label_space.LabelSpace)."""

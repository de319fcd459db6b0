"""The ground floor: what every other package may import, and that imports nothing of ours."""

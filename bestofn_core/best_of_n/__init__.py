"""BestOfN: sampling a module N times and keeping the best prediction."""

% gather(x) for Octave: MATLAB's gpuArray gather is the identity for ordinary arrays.
function x = gather(x)
end

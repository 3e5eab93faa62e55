% run_getdcorr(images_mat, out_txt, funcs_dir)
% Runs the authors' unmodified MATLAB code (github.com/Ades91/ImDecorr, funcs/) on every image
% in images_mat, as their main_imageDecorr.m does: getDcorr(apodImRect(image, 20), r, 10),
% r = linspace(0, 1, 50). Writes one line per image: name kcMax A0.
function run_getdcorr(images_mat, out_txt, funcs_dir)
  addpath(funcs_dir);
  if ~exist('gather')  % MATLAB's gpuArray helper; Octave lacks it, and for CPU arrays it is identity
    addpath(fullfile(fileparts(mfilename('fullpath')), 'octave_shim'));
  end
  images = load(images_mat);
  names = sort(fieldnames(images));
  fid = fopen(out_txt, 'w');
  for i = 1:numel(names)
    im = double(images.(names{i}));
    [kcMax, A0] = getDcorr(apodImRect(im, 20), linspace(0, 1, 50), 10);
    fprintf(fid, '%s %.10g %.10g\n', names{i}, double(kcMax), double(A0));
  end
  fclose(fid);
end

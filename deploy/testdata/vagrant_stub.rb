# SPDX-License-Identifier: Apache-2.0
# Copyright The crmon Authors.
#
# Loads a Vagrantfile with a Vagrant that records every configuration
# call instead of making a VM, and prints them as JSON, so that a test can
# read the provisioners from Ruby itself rather than from the file's text.
require "json"
class Recorder
  attr_reader :calls
  def initialize(calls, path) @calls = calls; @path = path end
  def method_missing(name, *args, **kw, &blk)
    @calls << { "call" => (@path + [name.to_s]).join("."), "args" => args.map(&:to_s), "kw" => kw.transform_keys(&:to_s).transform_values(&:to_s) }
    blk.call(Recorder.new(@calls, @path + [name.to_s, args.first.to_s])) if blk
    Recorder.new(@calls, @path + [name.to_s])
  end
  def respond_to_missing?(*) true end
  def []=(k, v) @calls << { "call" => (@path + ["[]="]).join("."), "args" => [k.to_s, v.to_s], "kw" => {} } end
end
module Vagrant
  def self.configure(version)
    calls = []
    yield Recorder.new(calls, ["config"])
    puts JSON.generate({ "version" => version, "calls" => calls })
  end
end
load ARGV[0]

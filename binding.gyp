{
  "targets": [
    {
      "target_name": "vxtun_native",
      "sources": [ "native/addon.cc", "native/tun.cc", "native/io.cc", "native/poll.cc", "native/checksum.cc", "native/encap.cc", "native/udp.cc", "native/tun_offload.cc", "native/express.cc", "native/express_rules.cc", "native/sched.cc", "native/memory.cc" ],
      "include_dirs": [ "<!(node -p \"require('node-addon-api').include_dir\")" ],
      "defines": [ "NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS" ],
      "cflags_cc": [ "-O2", "-std=c++17", "-Wall", "-Wextra" ],
      "cflags!": [ "-fno-exceptions" ]
    }
  ]
}
